"""Read deadlines and the connection cap of a real server process (server/http_server.py).

The servers run with 1 s deadlines and, for the cap, 4 connections, so every case takes about a
second; the defaults are the same code with larger numbers (docs/configuration.md). One case runs
the site in-process, to see which timers the deadlines schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from click.testing import CliRunner

from simhive.server.cli import main as cli
from simhive.server.core import limits
from simhive.server.http_server import GuardedSite, HttpSettings, sweep_interval
from tests.server._server import Server, server
from tests.support.procs import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
DEADLINE = 1.0
CAP = 4
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def address(srv: Server) -> tuple[str, int]:
    parts = urlsplit(srv.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    options = ("--header-timeout", str(DEADLINE), "--body-timeout", str(DEADLINE))
    with server(tmp_path_factory.mktemp("timeouts"), options=options) as srv:
        yield srv


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    options = ("--header-timeout", str(DEADLINE), "--max-connections", str(CAP))
    with server(tmp_path_factory.mktemp("cap"), options=options) as srv:
        yield srv


def connect(srv: Server) -> socket.socket:
    sock = socket.create_connection(address(srv), timeout=10)
    return sock


def closed_after(sock: socket.socket, limit: float = 5.0) -> float:
    """Seconds until the server closes `sock` (reads and drops whatever it answers)."""
    started = time.monotonic()
    sock.settimeout(limit)
    with contextlib.suppress(ConnectionError):
        while sock.recv(65536):
            pass
    return time.monotonic() - started


def answer(sock: socket.socket, request: bytes = HEALTH) -> bytes:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_partial_bodies_are_closed_after_the_body_timeout(timed: Server) -> None:
    head = (
        f"POST /getdata/addsms?token={timed.token} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
    )
    socks = [connect(timed) for _ in range(50)]
    started = time.monotonic()
    for sock in socks:
        sock.sendall(head.encode() + b"body=part")
    waited = [closed_after(sock) for sock in socks]
    elapsed = time.monotonic() - started
    for sock in socks:
        sock.close()
    assert max(waited) < 4 and elapsed < 5, (max(waited), elapsed)
    assert elapsed >= DEADLINE * 0.9, elapsed
    with connect(timed) as sock:
        assert answer(sock).startswith(b"HTTP/1.1 200")


def test_trickled_or_missing_headers_are_closed_after_the_header_timeout(timed: Server) -> None:
    with connect(timed) as silent, connect(timed) as trickle:
        started = time.monotonic()
        trickle.sendall(b"GET /health HTTP/1.1\r\n")
        trickle.settimeout(0.2)
        closed = False
        while time.monotonic() - started < 5 and not closed:
            try:
                trickle.sendall(b"X-Slow: 1\r\n")  # a byte now and then does not extend it
                closed = trickle.recv(100) == b""
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
        trickled = time.monotonic() - started
        assert closed and DEADLINE * 0.9 <= trickled < DEADLINE + 1.5, trickled
        assert closed_after(silent) < 2  # a connection that never sends anything


def test_unhurried_clients_are_served(timed: Server) -> None:
    with connect(timed) as sock:
        sock.sendall(HEALTH[:10])
        time.sleep(DEADLINE / 3)  # headers in two parts, inside the deadline
        assert answer(sock, HEALTH[10:]).startswith(b"HTTP/1.1 200")
        # Idle between requests longer than the header deadline: keep-alive governs that.
        time.sleep(DEADLINE * 1.5)
        assert answer(sock).startswith(b"HTTP/1.1 200")
        form = f"token={timed.token}"
        head = (f"POST /getdata/getalldevices HTTP/1.1\r\nHost: x\r\nContent-Length: {len(form)}"
                "\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n")  # fmt: skip
        sock.sendall(head.encode())
        time.sleep(DEADLINE / 3)  # the body a moment after its headers
        assert b'"error":0' in answer(sock, form.encode())


def socket_count(pid: int) -> int:
    fds = f"/proc/{pid}/fd"
    links = []
    for name in os.listdir(fds):
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"{fds}/{name}"))
    return sum(link.startswith("socket:") for link in links)


def test_at_the_cap_new_connections_wait_instead_of_failing(capped: Server) -> None:
    baseline = socket_count(capped.proc.pid)
    silent = [connect(capped) for _ in range(CAP)]
    time.sleep(0.2)
    started = time.monotonic()
    with connect(capped) as late:  # the kernel completes the connect; the server reads it later
        reply = answer(late)
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 200")
    # Served once the silent ones missed their header deadline and were closed, not before.
    assert DEADLINE * 0.6 <= waited < DEADLINE + 2, waited
    for sock in silent:
        sock.close()

    crowd = [connect(capped) for _ in range(3 * CAP)]
    time.sleep(0.5)
    held = socket_count(capped.proc.pid) - baseline
    for sock in crowd:
        sock.close()
    assert held <= CAP, held  # the rest waited in the listen queue, holding nothing


def test_at_the_cap_an_idle_keepalive_connection_makes_room(capped: Server) -> None:
    time.sleep(DEADLINE * 1.5)  # connections of earlier tests are gone
    idle = [connect(capped) for _ in range(CAP)]
    for sock in idle:
        assert answer(sock).startswith(b"HTTP/1.1 200")  # one request each, then idle
    started = time.monotonic()
    with connect(capped) as newcomer:
        assert answer(newcomer).startswith(b"HTTP/1.1 200")
    assert time.monotonic() - started < DEADLINE / 2
    closed = 0
    for sock in idle:
        sock.settimeout(0.2)
        with contextlib.suppress(TimeoutError):
            closed += sock.recv(100) == b""
        sock.close()
    assert closed == 1  # exactly the one whose slot the newcomer took


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def test_deadlines_schedule_no_timer_per_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    # A timer per connection (armed on connect, cancelled once the headers are in) made every
    # new connection cost more than the rest of the guard together: the deadlines are enforced
    # by one sweep per interval instead, however many connections come and go.
    connections = 100
    loop = asyncio.get_running_loop()
    ours: list[object] = []
    call_later = loop.call_later

    def counting(delay: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        if getattr(callback, "__module__", None) == "simhive.server.http_server":
            ours.append(callback)
        return call_later(delay, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_later", counting)
    app = web.Application()
    app.router.add_get("/health", _health)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    await GuardedSite(runner, "127.0.0.1", port, HttpSettings(), {}).start()
    try:
        for _ in range(connections):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(HEALTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
            assert (await reader.read()).startswith(b"HTTP/1.1 200")
            writer.close()
            await writer.wait_closed()
    finally:
        await runner.cleanup()
    # The sweep runs every half second while connections are open: a few in this loop.
    assert 1 <= len(ours) < connections / 4, len(ours)


def test_documented_defaults_are_the_real_ones() -> None:
    rows = dict(re.findall(r"^\| `(--[a-z-]+) [A-Z]+` \| (\d+) \|", DOC.read_text(), re.M))
    assert rows == {
        "--header-timeout": f"{limits.HEADER_TIMEOUT_SECONDS:g}",
        "--body-timeout": f"{limits.BODY_TIMEOUT_SECONDS:g}",
        "--max-connections": str(limits.MAX_CONNECTIONS),
    }
    assert f"stays open for {limits.KEEPALIVE_SECONDS:g} s" in DOC.read_text()
    assert "checked every half second" in DOC.read_text()
    assert sweep_interval(HttpSettings()) == 0.5
    assert sweep_interval(HttpSettings(header_timeout=1, body_timeout=2)) == 0.1
    usage = CliRunner().invoke(cli, ["run", "--help"]).output
    for option, default in rows.items():
        shown = re.search(rf"{option} .*?\[default: ([0-9.]+)", usage, re.S)
        assert shown and float(shown.group(1)) == float(default), (option, usage)
