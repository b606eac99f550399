"""Helpers shared by the server benchmarks: real server processes on free loopback ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def cli(*args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "simhive.server.cli", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


@dataclass
class Gateway:
    url: str
    token: str
    device_id: int
    db: Path
    pid: int


@contextlib.contextmanager
def process(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_port(port)
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def gateway(workdir: Path) -> Iterator[Gateway]:
    """A real `simhive-server run` process on a fresh database, with one account and device."""
    db = workdir / "bench.sqlite3"
    account = cli("account", "create", "--db", str(db), "--email", "bench@example.com",
                  "--password", "benchmark-password")  # fmt: skip
    device = cli("device", "create", "--db", str(db), "--email", "bench@example.com",
                 "--title", "bench")  # fmt: skip
    port = free_port()
    argv = [sys.executable, "-m", "simhive.server.cli", "run", "--db", str(db), "--port", str(port)]
    with process(argv, port, workdir / "server.log") as proc:
        yield Gateway(
            f"http://127.0.0.1:{port}",
            str(account["token"]),
            int(str(device["device_id"])),
            db,
            proc.pid,
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(title: str, rows: list[tuple[str, float, str]]) -> None:
    print(f"\n== {title}")
    for name, value, unit in rows:
        shown = f"{value:>12.2f}" if unit in ("x", "ms") else f"{value:>12,.0f}"
        print(f"  {name:<50} {shown} {unit}")
