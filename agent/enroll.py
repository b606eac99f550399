"""`simhive-agent enroll URL CODE`: swap an enrollment code (from `POST /api/v1/devices`) for the
device token and write it into the agent's config, so the token is never typed or copied.

The config file is created if missing (server, journal, the device) or gets one more
`[[device]]`; it is written whole to a new file that only its owner may read (0600) and then
renamed over the old one, so a crash leaves the old file or the new one, never half of each. The
token is never printed. The modem's port is `--port` (twice for a composite modem with one port
per SIM), /dev/ttyUSB2 if not given: `simhive-agent probe PORT` finds out which port answers.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import click

from simhive.agent import config as config_mod
from simhive.agent.modem.profiles import PROFILES

DEFAULT_CONFIG = "/etc/simhive/agent.toml"
DEFAULT_JOURNAL = "/var/lib/simhive-agent/journal.sqlite3"
DEFAULT_PORT = "/dev/ttyUSB2"


def fail(message: str, hint: str) -> NoReturn:
    click.echo(f"simhive-agent: {message} ({hint})", err=True)
    sys.exit(1)


def redeem(url: str, code: str, timeout: float = 30.0) -> dict[str, object]:
    """POST the code to the server; its answer (device_id, name, token), or exit with a line."""
    request = urllib.request.Request(
        url + "/agent/v1/enroll",
        data=json.dumps({"code": code}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            data = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        fail(f"enroll refused: {message}", "codes work once and expire; make the device anew")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(f"cannot reach {url}: {reason}", "check the URL and that the server runs")
    if not isinstance(data, dict) or not isinstance(data.get("token"), str):
        fail(f"{url} did not answer like a simhive server", "check the URL")
    out: dict[str, object] = data
    return out


def _toml(value: object) -> str:
    return json.dumps(value, ensure_ascii=True)  # a JSON string or list is a TOML one too


def device_block(name: str, token: str, server: str | None, ports: tuple[str, ...],
                 dual_sim: str | None, profile: str | None) -> str:  # fmt: skip
    lines = ["[[device]]", f"name = {_toml(name)}", f"token = {_toml(token)}"]
    if server is not None:
        lines.append(f"server = {_toml(server)}")
    if len(ports) > 1:
        lines.append(f"ports = {_toml(list(ports))}")
    else:
        lines.append(f"port = {_toml(ports[0] if ports else DEFAULT_PORT)}")
    if dual_sim is not None:
        lines.append(f"dual_sim = {_toml(dual_sim)}")
    if profile is not None:
        lines.append(f"profile = {_toml(profile)}")
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` as a new 0600 file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@click.command()
@click.argument("url")
@click.argument("code")
@click.option(
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The agent's TOML config to create or extend.",
)
@click.option(
    "--port",
    "ports",
    multiple=True,
    help=f"The modem's AT port (twice: one port per SIM) [default {DEFAULT_PORT}].",
)
@click.option(
    "--dual-sim",
    type=click.Choice(config_mod.DUAL_SIM_STYLES),
    default=None,
    help="How one port switches between two SIMs (see docs/agent.md).",
)
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default=None,
    help="Modem profile (default: detected).",
)
@click.option(
    "--journal",
    default=DEFAULT_JOURNAL,
    show_default=True,
    help="The journal path, for a new config file.",
)
def enroll(url: str, code: str, config_path: str, ports: tuple[str, ...], dual_sim: str | None,
           profile: str | None, journal: str) -> None:  # fmt: skip
    """Swap CODE (from creating the device) at the server URL for the device token, and write
    the device into the agent's config."""
    url = url.rstrip("/")
    parts = urlsplit(url)
    # A path is a reverse proxy's prefix (as the config's `server` may have one).
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        fail(f"not a server URL: {url!r}", "give the base URL, e.g. http://192.168.1.10:8080")
    if len(ports) > 2:
        fail("at most two --port options", "one per SIM of a composite modem")
    path = Path(config_path)
    old = ""
    if path.exists():
        try:
            old = path.read_text("utf-8")
            existing = tomllib.loads(old)
        except (OSError, UnicodeError, tomllib.TOMLDecodeError) as exc:
            fail(f"cannot read {path}: {exc}", "fix or move it, then enroll again")
    else:
        existing = {}
    answer = redeem(url, code)
    token = str(answer["token"])
    name = str(answer.get("name") or f"device-{answer.get('device_id')}")
    taken = {str(d.get("name")) for d in existing.get("device", []) if isinstance(d, dict)}
    if name in taken:
        name = f"{name}-{answer.get('device_id')}"
    if old:
        server = None if existing.get("server") == url else url
        text = old.rstrip("\n") + "\n\n" + device_block(name, token, server, ports, dual_sim,
                                                        profile)  # fmt: skip
    else:
        head = f'server = {_toml(url)}\njournal = {_toml(journal)}\nlog_level = "info"\n\n'
        text = head + device_block(name, token, None, ports, dual_sim, profile)
    try:
        write_private(path, text)
    except OSError as exc:
        fail(f"cannot write {path}: {exc}", "run as a user that may write it, or give --config")
    try:
        config_mod.load(str(path))
    except config_mod.ConfigError as exc:
        fail(f"wrote {path}, but it does not check: {exc}",
             "edit it, then run simhive-agent check-config")  # fmt: skip
    port_text = ", ".join(ports) if ports else f"{DEFAULT_PORT} (the default; --port to change)"
    click.echo(
        f"enrolled device {name!r} (id {answer.get('device_id')}): wrote {path} (mode 0600),"
        f" port {port_text}"
    )
    click.echo(f"next: simhive-agent check-config {path} && simhive-agent run --config {path}")
