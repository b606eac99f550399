"""`simhive-server demo`: a ready-to-try gateway in one directory.

Creates (idempotently) a demo account and two devices in STATE/simhive.sqlite3, then starts the
whole gateway as child processes: the server, the modem emulator (two dual-SIM modems, one per
device) and the host agent driving those modems. It prints the token and two curl commands to
paste (send an SMS, see it delivered), writes STATE/demo.json (server URL, account, devices with
their SIM numbers, the emulator's control URL), and stops all three on Ctrl-C or SIGTERM.

It refuses to start, with one line saying why, when the port is taken (the readiness check would
otherwise find the other server and print a banner that does not work) or another demo runs on
the same STATE (the two would share the emulator's links, agent.toml and the agent's journal).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import fcntl
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

from simhive.server.core import security
from simhive.server.core.gateway import Gateway
from simhive.server.core.models import Account
from simhive.server.paths import private_dir, private_file
from simhive.server.store.sqlite import SqliteStore

DEMO_EMAIL = "demo@simhive.local"
DEVICE_TITLES = ("demo-modem-1", "demo-modem-2")
# Two dual-SIM devices, each with one AT port per SIM (dual standby: both SIMs registered at all
# times), so an SMS to any demo number arrives at once and both SIMs' info is read at start-up.
# A single-standby modem (one radio, SIMs switched with AT+CDSDS) would hold SMS and status reports
# for its inactive SIM until the agent's next visit (sim_visit_seconds, 60 s), and report the
# inactive SIM's info only after one: the demo's "delivered a second later" would then be true
# only half of the time. Status reports arrive a second after delivery, as on a quiet network.
EMULATOR_PROFILE = "quectel-ec25"
EMULATOR_DUAL_SIM = "ports"
REPORT_DELAY_SECONDS = "1"


@dataclass
class DemoState:
    state_dir: Path
    host: str
    port: int
    email: str = DEMO_EMAIL
    password: str = ""
    token: str = ""
    devices: list[dict[str, Any]] = field(default_factory=list)
    emulator: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return self.state_dir / "simhive.sqlite3"

    @property
    def emulator_dir(self) -> Path:
        return self.state_dir / "emulator"

    @property
    def agent_config(self) -> Path:
        return self.state_dir / "agent.toml"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def as_json(self) -> dict[str, Any]:
        return {
            "server_url": self.url,
            "database": str(self.db),
            "account": {"email": self.email, "password": self.password, "token": self.token},
            "devices": self.devices,
            "emulator_control": self.emulator.get("control"),
        }


@dataclass
class Child:
    """One process the demo runs; `argv` is built from the prepared state."""

    name: str
    argv: Callable[[DemoState], list[str]]
    # Waits until the child is usable; raises OSError (or TimeoutError) if it cannot become so.
    ready: Callable[[DemoState, subprocess.Popen[bytes]], None] = lambda _state, _proc: None


def _server_argv(state: DemoState) -> list[str]:
    return [
        sys.executable,
        "-u",
        "-m",
        "simhive.server.cli",
        "run",
        "--db",
        str(state.db),
        "--host",
        state.host,
        "--port",
        str(state.port),
    ]


def _exited(name: str, proc: subprocess.Popen[bytes], state: DemoState) -> None:
    if proc.poll() is not None:
        log = state.state_dir / f"{name}.log"
        raise OSError(f"the {name} exited with {proc.returncode} while starting; see {log}")


def _wait_server(state: DemoState, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _exited("server", proc, state)
        try:
            with socket.create_connection((state.host, state.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"server did not listen on {state.url} within {timeout} s")


def _emulator_argv(state: DemoState) -> list[str]:
    # A stale emulator.json from an earlier run would look like a ready emulator.
    (state.emulator_dir / "emulator.json").unlink(missing_ok=True)
    return [
        sys.executable,
        "-u",
        "-m",
        "simhive.hardware.emulator",
        "run",
        "--modems",
        str(len(DEVICE_TITLES)),
        "--profile",
        EMULATOR_PROFILE,
        "--dual-sim",
        EMULATOR_DUAL_SIM,
        "--report-delay",
        REPORT_DELAY_SECONDS,
        "--state",
        str(state.emulator_dir),
    ]


def _wait_emulator(state: DemoState, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait for emulator.json, then give each demo device its modem, ports and SIM numbers."""
    path = state.emulator_dir / "emulator.json"
    deadline = time.monotonic() + timeout
    while not path.exists():
        _exited("emulator", proc, state)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the emulator did not write {path} within {timeout} s")
        time.sleep(0.1)
    state.emulator = _load(path)
    modems = state.emulator.get("modems", [])
    if len(modems) < len(state.devices):
        raise OSError(f"the emulator has {len(modems)} modems for {len(state.devices)} devices")
    for device, modem in zip(state.devices, modems, strict=False):
        # One stable link per SIM (DIR/m1 for SIM 1, DIR/m1-sim2 for SIM 2), docs/emulator.md.
        ports = [s["link"] for s in modem["sims"]]
        device["modem"] = {"id": modem["id"], "ports": ports, "profile": modem["profile"]}
        device["sims"] = [{"slot": s["slot"], "number": s["number"]} for s in modem["sims"]]


def _agent_argv(state: DemoState) -> list[str]:
    _write_agent_config(state)
    return [
        sys.executable,
        "-u",
        "-m",
        "simhive.agent.cli",
        "run",
        "--config",
        str(state.agent_config),
    ]


def _write_agent_config(state: DemoState) -> None:
    """One [[device]] per demo device, bound to its emulated modem (see docs/agent.md)."""
    lines = [
        f"server = {json.dumps(state.url)}",
        f"journal = {json.dumps(str(state.state_dir / 'agent-journal.sqlite3'))}",
        'log_level = "info"',
    ]
    for device in state.devices:
        lines += [
            "",
            "[[device]]",
            f"name = {json.dumps(device['title'])}",
            f"token = {json.dumps(device['token'])}",
            f"ports = {json.dumps(device['modem']['ports'])}",
            f"profile = {json.dumps(device['modem']['profile'])}",
        ]
    _write_private(state.agent_config, "\n".join(lines) + "\n")


# The processes of the demo, started in order (each waited for) and stopped in reverse order.
CHILDREN: list[Child] = [
    Child("server", _server_argv, _wait_server),
    Child("emulator", _emulator_argv, _wait_emulator),
    Child("agent", _agent_argv),
]


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
    _write_private(path, json.dumps(state.as_json(), indent=2) + "\n")
    return path


def _write_private(path: Path, text: str) -> None:
    """Atomically, readable by the owner only: demo.json and agent.toml hold tokens."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    private_file(tmp)  # 0600 from the start, not chmod'ed after the tokens are in
    tmp.write_text(text)
    tmp.replace(path)


def banner(state: DemoState) -> str:
    sender, receiver = state.devices[0], state.devices[-1]
    to = receiver["sims"][0]["number"]
    api = f"{state.url}/getdata"
    devices = [
        f"{d['device_id']} ({d['title']}, SIM numbers "
        + ", ".join(sim["number"] for sim in d["sims"])
        + ")"
        for d in state.devices
    ]
    return "\n".join(
        [
            "",
            f"simhive demo gateway: {state.url}",
            f"  account  {state.email}",
            f"  token    {state.token}",
            "  devices  " + "\n           ".join(devices),
            f"  state    {state.state_dir / 'demo.json'}",
            f"  console  {state.url}/ (log in with the account and the password in demo.json)",
            "",
            f"Send an SMS from device {sender['device_id']} (SIM 1) to {to}, a SIM of device"
            f" {receiver['device_id']};",
            "a second later ask for its status (7 = delivered):",
            "",
            f'  SMS_ID=$(curl -s "{api}/addsms" -d token={state.token}'
            f" -d device_id={sender['device_id']} -d sim=0 --data-urlencode sendto={to}"
            " --data-urlencode 'body=Hello from simhive'"
            ' | sed -E \'s/.*"sms_id":([0-9]+).*/\\1/\'); echo "sms_id=$SMS_ID"',
            f'  curl -s "{api}/getsmsstatus?token={state.token}&sms_id=$SMS_ID"',
            "",
            f"Device {receiver['device_id']} receives it as an incoming SMS"
            " (status 5 in getallsms).",
            f"Logs: {state.state_dir}/server.log, emulator.log, agent.log. Stop with Ctrl-C.",
            "",
        ]
    )


def _port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port, or None. Bound as the server binds
    (SO_REUSEADDR, so a closing socket of an earlier run does not count as busy)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot use --host {host}: {exc.strerror or exc}"
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return (
                        f"port {port} on {host} is already in use (another simhive demo or"
                        " server?); stop it, or choose another port with --port N"
                    )
                return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _lock_state(state_dir: Path) -> int | None:
    """Hold STATE/demo.lock for the demo's lifetime; None if another demo holds it."""
    fd = os.open(state_dir / "demo.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def run_demo(state_dir: Path, host: str = "127.0.0.1", port: int = 8080) -> int:
    state_dir = state_dir.resolve()
    try:
        private_dir(state_dir)
        lock = _lock_state(state_dir)
    except OSError as exc:
        print(f"demo: cannot use {state_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if lock is None:
        print(
            f"demo: another demo is running with {state_dir}; stop it first (Ctrl-C there)",
            file=sys.stderr,
        )
        return 1
    try:
        problem = _port_problem(host, port)
        if problem is not None:
            print(f"demo: {problem}", file=sys.stderr)
            return 1
        return _run(DemoState(state_dir, host, port))
    finally:
        os.close(lock)


def _run(state: DemoState) -> int:
    asyncio.run(prepare(state))

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
            if stopping:
                break
            proc = _spawn(child, state)
            procs.append((child, proc))
            child.ready(state, proc)
        if not stopping:
            # Written once, when the whole gateway is up: a demo.json with this run's URL means
            # "ready to use".
            _write_state(state)
            print(banner(state), flush=True)
        while not stopping:
            for child, proc in procs:
                if proc.poll() is not None:
                    print(
                        f"demo: {child.name} exited with {proc.returncode};"
                        f" see {state.state_dir / (child.name + '.log')}",
                        file=sys.stderr,
                    )
                    exit_code = proc.returncode or 1
                    stopping = True
            time.sleep(0.2)
    except (TimeoutError, OSError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        exit_code = 1
    finally:
        _stop(procs)
        if not (state.state_dir / "demo.json").exists():
            _write_state(state)  # keep the new account's password and tokens even after a failure
    return exit_code


def _spawn(child: Child, state: DemoState) -> subprocess.Popen[bytes]:
    """Start a child in its own session (a terminal's Ctrl-C reaches only the demo, which then
    stops the children in order), its output in STATE/<name>.log."""
    with open(state.state_dir / f"{child.name}.log", "ab") as log:
        return subprocess.Popen(
            child.argv(state),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


# Loaded before any fork: between fork and exec only the prctl call itself is safe.
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the kernel SIGKILLs the child if the demo dies without stopping it (kill -9)."""
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(procs: list[tuple[Child, subprocess.Popen[bytes]]]) -> None:
    # One at a time, last started first: the agent finishes the part in flight and keeps the rest
    # in its journal while the modems and the server are still there to hear it.
    for _child, proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
