"""`simhive-server demo`: a ready-to-try gateway in one directory.

Creates (idempotently) a demo account and two devices in STATE/simhive.sqlite3, starts the processes
of CHILDREN (for now the server; the emulator and the agent join the list later), prints the token
and curl commands to paste, writes STATE/demo.json, and stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from server.core import security
from server.core.gateway import Gateway
from server.core.models import Account
from server.store.sqlite import SqliteStore

DEMO_EMAIL = "demo@simhive.local"
DEVICE_TITLES = ("demo-modem-1", "demo-modem-2")


@dataclass
class DemoState:
    state_dir: Path
    host: str
    port: int
    email: str = DEMO_EMAIL
    password: str = ""
    token: str = ""
    devices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.state_dir / "simhive.sqlite3"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def as_json(self) -> dict[str, Any]:
        return {
            "server_url": self.url,
            "database": str(self.db),
            "account": {"email": self.email, "password": self.password, "token": self.token},
            "devices": self.devices,
        }


@dataclass
class Child:
    """One process the demo runs; `argv` is built from the prepared state."""

    name: str
    argv: Callable[[DemoState], list[str]]
    ready: Callable[[DemoState], None] = lambda _state: None


def _server_argv(state: DemoState) -> list[str]:
    return [
        sys.executable,
        "-m",
        "server.cli",
        "run",
        "--db",
        str(state.db),
        "--host",
        state.host,
        "--port",
        str(state.port),
    ]


def _wait_server(state: DemoState, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((state.host, state.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"server did not listen on {state.url} within {timeout} s")


# The processes of the demo, started in order and stopped in reverse order. The emulator and the
# agent are appended here when they exist.
CHILDREN: list[Child] = [Child("server", _server_argv, _wait_server)]


async def prepare(state: DemoState) -> None:
    """Create or reuse the demo account, its token and two devices; keep secrets in demo.json."""
    previous = _load(state.state_dir / "demo.json")
    store = SqliteStore(state.db)
    await store.open()
    try:
        gw = Gateway(store)
        account: Account | None = await store.account_by_email(DEMO_EMAIL)
        if account is None:
            state.password = secrets.token_urlsafe(12)
            account, state.token = await gw.create_account(DEMO_EMAIL, state.password)
        else:
            state.password = str(previous.get("account", {}).get("password", ""))
            old_token = str(previous.get("account", {}).get("token", ""))
            found = await store.account_by_token_hash(security.hash_token(old_token))
            state.token = (
                old_token if found and found.id == account.id else await gw.issue_token(account)
            )
        old_devices = {int(d["device_id"]): d for d in previous.get("devices", [])}
        existing = {d.title: d for d in await store.list_devices(account.id)}
        state.devices = []
        for title in DEVICE_TITLES:
            device = existing.get(title)
            if device is None:
                device, device_token = await gw.create_device(account, title)
            else:
                device_token = str(old_devices.get(device.id, {}).get("token", ""))
                if not security.token_matches(device_token, device.token_hash):
                    device_token = await gw.reset_device_token(device.id)
            state.devices.append({"device_id": device.id, "title": title, "token": device_token})
    finally:
        await store.close()


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(state: DemoState) -> Path:
    path = state.state_dir / "demo.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.as_json(), indent=2) + "\n")
    os.chmod(tmp, 0o600)  # it holds tokens and the demo password
    tmp.replace(path)
    return path


def banner(state: DemoState) -> str:
    device_id = state.devices[0]["device_id"]
    api = f"{state.url}/getdata"
    return "\n".join(
        [
            "",
            f"simhive demo gateway: {state.url}",
            f"  account  {state.email}",
            f"  token    {state.token}",
            "  devices  " + ", ".join(f"{d['device_id']} ({d['title']})" for d in state.devices),
            f"  state    {state.state_dir / 'demo.json'}",
            "",
            "Send an SMS, then ask for its status:",
            "",
            f'  SMS_ID=$(curl -s "{api}/addsms" -d token={state.token} -d device_id={device_id}'
            " --data-urlencode sendto=+4915752982212 --data-urlencode 'body=Hello from simhive'"
            ' | sed -E \'s/.*"sms_id":([0-9]+).*/\\1/\'); echo "sms_id=$SMS_ID"',
            f'  curl -s "{api}/getsmsstatus?token={state.token}&sms_id=$SMS_ID"',
            "",
            "Stop with Ctrl-C.",
            "",
        ]
    )


def run_demo(state_dir: Path, host: str = "127.0.0.1", port: int = 8080) -> int:
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    state = DemoState(state_dir, host, port)
    asyncio.run(prepare(state))
    _write_state(state)

    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    procs: list[tuple[Child, subprocess.Popen[bytes]]] = []
    exit_code = 0
    try:
        for child in CHILDREN:
            proc = subprocess.Popen(child.argv(state), start_new_session=True)
            procs.append((child, proc))
            child.ready(state)
        print(banner(state), flush=True)
        while not stopping:
            for child, proc in procs:
                if proc.poll() is not None:
                    print(f"demo: {child.name} exited with {proc.returncode}", file=sys.stderr)
                    exit_code = proc.returncode or 1
                    stopping = True
            time.sleep(0.2)
    except (TimeoutError, OSError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        exit_code = 1
    finally:
        _stop(procs)
    return exit_code


def _stop(procs: list[tuple[Child, subprocess.Popen[bytes]]]) -> None:
    for _child, proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for _child, proc in reversed(procs):
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
