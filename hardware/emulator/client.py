"""A typed, synchronous client for the emulator's control API, and a helper to run the emulator.

    with run_emulator(modems=2, profile="sim800c-ds") as emu:
        number = emu.state["modems"][1]["sims"][0]["number"]
        emu.client.set_faults("m1", {"cms_error": {"code": 41, "count": 1}})
        ...
        sent = emu.client.submitted()

Standard library only (urllib), so tests in any part of the project can use it from threads or
synchronous code; in async tests call it through asyncio.to_thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, cast


class SimDescription(TypedDict):
    slot: int
    number: str
    iccid: str
    imsi: str
    operator: str
    operator_code: str
    port: str | None  # only in the two-port layout
    link: str | None


class ModemDescription(TypedDict):
    id: str
    port: str | None
    link: str
    profile: str
    dual_sim: str
    imei: str
    sims: list[SimDescription]


class EmulatorDescription(TypedDict):
    pid: int
    control: str
    modems: list[ModemDescription]


class EmulatorError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class EmulatorClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = str(exc.reason)
            raise EmulatorError(exc.code, str(message)) from None

    # ---- reads --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The emulator.json description plus "live" per modem and "network"."""
        return cast(dict[str, Any], self._call("GET", "/state"))

    def modem(self, modem_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/modems/{modem_id}"))

    def submitted(self, *, since: int = 0, modem: str | None = None) -> list[dict[str, Any]]:
        """Every part the network accepted (one entry per AT+CMGS), oldest first."""
        query = f"?since={since}" + (f"&modem={modem}" if modem else "")
        return cast(list[dict[str, Any]], self._call("GET", "/submitted" + query)["submitted"])

    def clear_submitted(self) -> None:
        self._call("DELETE", "/submitted")

    def storage(self, modem_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/modems/{modem_id}/storage"))

    def network(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/network"))

    # ---- changes ------------------------------------------------------------------------------

    def set_faults(self, modem_id: str, faults: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("POST", f"/modems/{modem_id}/faults", faults))

    def clear_faults(self, modem_id: str) -> None:
        self._call("DELETE", f"/modems/{modem_id}/faults")

    def unplug(self, modem_id: str) -> None:
        self._call("POST", f"/modems/{modem_id}/unplug", {})

    def replug(self, modem_id: str) -> None:
        self._call("POST", f"/modems/{modem_id}/replug", {})

    def set_sim(self, modem_id: str, slot: int, **fields: Any) -> dict[str, Any]:
        """roaming=bool, csq=0..31|99, present=bool, ussd={code: reply text or None}."""
        return cast(dict[str, Any], self._call("POST", f"/modems/{modem_id}/sims/{slot}", fields))

    def send_sms(self, sender: str, to: str, text: str) -> dict[str, Any]:
        """An SMS from outside the emulated set to an emulated number."""
        body = {"from": sender, "to": to, "text": text}
        return cast(dict[str, Any], self._call("POST", "/sms", body))

    def configure_network(self, **spec: Any) -> dict[str, Any]:
        """report_delay, report_outcome, latency, rules=[{pattern, outcome, status?, delay?}]."""
        return cast(dict[str, Any], self._call("POST", "/network", spec))

    # ---- waiting ------------------------------------------------------------------------------

    def wait_submitted(
        self, count: int, *, timeout: float = 30.0, since: int = 0
    ) -> list[dict[str, Any]]:
        """Poll until at least `count` parts were submitted (after id `since`); returns them all,
        as one `submitted(since=since)` read at the end. Each poll asks only for the parts after
        the newest one seen: asking for everything every 50 ms made the emulator encode a
        growing list over and over, its largest CPU cost in a benchmark batch."""
        seen, newest = 0, since

        def probe() -> list[dict[str, Any]] | None:
            nonlocal seen, newest
            new = self.submitted(since=newest)
            if new:
                seen, newest = seen + len(new), int(new[-1]["id"])
            if seen < count:
                return None
            items = self.submitted(since=since)
            if len(items) >= count:
                return items
            # the log was cleared meanwhile: count again from what is there
            seen, newest = len(items), int(items[-1]["id"]) if items else newest
            return None

        return cast(list[dict[str, Any]], wait_for(probe, timeout))


def wait_for(probe: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Call `probe` until it returns something truthy; raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met after {timeout} s")
        time.sleep(interval)


@dataclass
class EmulatorProcess:
    proc: subprocess.Popen[bytes]
    state: EmulatorDescription
    state_dir: Path
    log: Path

    @property
    def client(self) -> EmulatorClient:
        return EmulatorClient(self.state["control"])

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, kill if needed; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        return int(self.proc.returncode)


def start_emulator(
    *,
    modems: int = 1,
    profile: str = "generic",
    dual_sim: str | None = None,
    state_dir: Path | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> EmulatorProcess:
    """Start `simhive-emulator run` as a child process and return once it printed its JSON."""
    state_dir = state_dir or Path(tempfile.mkdtemp(prefix="simhive-emu-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "emulator.log"
    argv = [sys.executable, "-m", "simhive.hardware.emulator", "run", "--modems", str(modems)]
    argv += ["--profile", profile, "--state", str(state_dir)]
    if dual_sim:
        argv += ["--dual-sim", dual_sim]
    argv += list(extra_args)
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            break
        ready, _, _ = select.select([proc.stdout], [], [], min(remaining, 0.5))
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            line += chunk
    if not line.endswith(b"\n"):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        raise RuntimeError(f"emulator did not start; see {log}:\n{log.read_text()[-2000:]}")
    state = cast(EmulatorDescription, json.loads(line.split(b"\n", 1)[0]))
    return EmulatorProcess(proc, state, state_dir, log)


@contextlib.contextmanager
def run_emulator(**kwargs: Any) -> Iterator[EmulatorProcess]:
    """start_emulator() for the duration of a with-block; stopped with SIGTERM afterwards."""
    emu = start_emulator(**kwargs)
    try:
        yield emu
    finally:
        emu.stop()
