"""The server part of `simhive-agent doctor`: reachable, TLS valid, device token accepted, and
the host clock against the server's (its HTTP `Date` header).

The token is tried with an empty `report` call: it authenticates like every agent call and
changes nothing on the server.
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime

from simhive.agent.http import HttpClient, HttpError, TlsError
from simhive.agent.serverhint import server_hint

from .findings import Report

SKEW_WARN_SECONDS = 10.0
SKEW_FAIL_SECONDS = 120.0
CLOCK_FIX = "turn on time sync on both hosts: sudo timedatectl set-ntp true"


async def check_server(report: Report, url: str, token: str, device: str, *,
                       seconds: float = 10.0) -> None:  # fmt: skip
    subject = f"server {url} (device {device!r})"
    body = json.dumps({"events": []}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    sent = time.time()
    try:
        async with HttpClient() as client:
            resp = await client.request("POST", f"{url}/agent/v1/report", body=body,
                                        headers=headers, seconds=seconds)  # fmt: skip
        status = resp.status
        date = resp.headers.get("date")
    except TlsError as exc:
        report.fail("server.tls", subject, f"TLS check failed: {exc}",
                    server_hint(f"ssl certificate {exc}", url))  # fmt: skip
        return
    except (HttpError, TimeoutError, OSError) as exc:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if isinstance(exc, TimeoutError):
            why += " (timeout)"
        report.fail("server.reachable", subject, f"cannot reach the server: {why}",
                    server_hint(why, url))  # fmt: skip
        return
    received = time.time()
    report.ok("server.reachable", subject, "reachable" + (" over valid TLS" if
              url.startswith("https://") else ""))  # fmt: skip
    if status == 401:
        report.fail(
            "server.token", subject, "the server refuses the device token (401)",
            "copy the token `simhive-server device create` printed for this device into the"
            " config (token or token_file); it is shown only once, so create a new device if lost",
        )  # fmt: skip
    elif status == 404:
        report.fail(
            "server.token", subject, "no agent API at this URL (404)",
            "point `server` at the simhive server's base URL (with a proxy's path prefix, if any)",
        )  # fmt: skip
    elif status >= 500:
        report.fail("server.token", subject, f"the server answers HTTP {status}",
                    server_hint(f"HTTP {status}", url))  # fmt: skip
    elif status >= 400:
        report.fail("server.token", subject, f"the server refuses the check (HTTP {status})",
                    "compare the agent's and the server's versions")  # fmt: skip
    else:
        report.ok("server.token", subject, "device token accepted")
    _clock(report, subject, date, (sent + received) / 2)


def _clock(report: Report, subject: str, date: str | None, local: float) -> None:
    if not date:
        report.warn("server.clock", subject, "the server sent no Date header; clock not compared",
                    "check the proxy in front of the server")  # fmt: skip
        return
    try:
        server = parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return
    skew = local - server
    # The Date header has whole seconds: up to 1 s of difference is rounding, not skew.
    text = f"clock {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the server"
    if abs(skew) >= SKEW_FAIL_SECONDS:
        report.fail("server.clock", subject, text, CLOCK_FIX)
    elif abs(skew) >= SKEW_WARN_SECONDS:
        report.warn("server.clock", subject, text, CLOCK_FIX)
    else:
        report.ok("server.clock", subject, f"clock within {SKEW_WARN_SECONDS:.0f} s of the server")
