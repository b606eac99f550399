"""A long poll never leases messages to an agent that is gone (issue 5; docs/agent-protocol.md).

Each window where the agent's connection can die is driven with raw sockets that reset
(SO_LINGER 0, so the server sees a RST as it does behind a dropping proxy):
(a) the client is gone while its pull is parked: nothing is leased, the message waits for the
    agent's next pull and goes out at attempt 1;
(b) the client is gone once the lease is being taken or written: the lease goes back at once
    (status 1, well before lease_seconds) and a late commit of it is rejected;
(c) the answer was delivered, then the connection died: the lease stands (the agent may commit
    it from a new connection), and without a commit it expires after lease_seconds as before.
Plus: a newer pull of a device ends its older parked one, and `holding` hands back leases the
agent no longer holds. The server runs in process on a real port, with aiohttp's cancellation of
handlers on disconnect (as `simhive-server run` does) and without it (an embedding that keeps the
default), and once as a real `simhive-server` process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import struct
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from simhive.server.api.compat import GATEWAY
from simhive.server.app import RUNNER_OPTIONS, create_app
from simhive.server.core.agent import AgentSettings
from simhive.server.core.gateway import Gateway, Outgoing
from simhive.server.core.models import Account, Lease
from simhive.server.store.sqlite import SqliteStore
from tests.server_agent.conftest import eventually
from tests.support.procs import console_script, free_port, running, wait_port
from tests.support.stack import wait_until

LONG_LEASE = 300  # far beyond every wait here: a message back at 1 was handed back, not expired
TO = "+4915752982212"


class GatedStore(SqliteStore):
    """The real store, with a gate in lease_due so a test can cut the client at that moment."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate_at: str | None = None  # 'before' or 'after' the lease is written
        self.at_gate = asyncio.Event()
        self.gate = asyncio.Event()
        self.lease_ids: list[str] = []

    async def lease_due(
        self, device_id: int, limit: int, lease_id: str, now: int, expires: int
    ) -> Lease:
        self.lease_ids.append(lease_id)
        if self.gate_at == "before":
            self.at_gate.set()
            await self.gate.wait()
        lease = await super().lease_due(device_id, limit, lease_id, now, expires)
        if self.gate_at == "after":
            self.at_gate.set()
            await self.gate.wait()
        return lease


@dataclass
class Server:
    port: int
    runner: web.AppRunner
    store: GatedStore
    gw: Gateway
    account: Account
    device_id: int
    token: str
    session: aiohttp.ClientSession
    sockets: list[asyncio.StreamWriter] = field(default_factory=list)

    async def send(self, body: str = "hi") -> int:
        [sms_id] = await self.gw.send(self.account, Outgoing(TO, body, self.device_id))
        return sms_id

    async def state(self, sms_id: int) -> tuple[int, int]:
        m = await self.gw.message(self.account, sms_id)
        return m.status, m.attempt

    async def agent(self, route: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.session.post(
            f"http://127.0.0.1:{self.port}/agent/v1/{route}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=60),
        ) as r:
            return r.status, await r.json()

    async def raw_pull(
        self, body: dict[str, Any]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.sockets.append(writer)
        writer.write(_request("/agent/v1/pull", self.token, body))
        await writer.drain()
        return reader, writer

    def server_saw_every_client_leave(self) -> bool:
        server = self.runner.server
        assert server is not None
        return all(h.transport is None for h in server.connections)


def _request(path: str, token: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a RST, as a dropping proxy or a rebooted router does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(v) for k, _, v in (ln.partition(": ") for ln in lines) if k.lower() == "content-length"
    )
    return status, json.loads(await asyncio.wait_for(reader.readexactly(length), 30))


Start = Callable[..., Awaitable[Server]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    started: list[Server] = []

    async def go(*, cancellation: bool = True, lease_seconds: int = LONG_LEASE) -> Server:
        store = GatedStore(tmp_path / f"db{len(started)}.sqlite3")
        settings = AgentSettings(lease_seconds=lease_seconds, long_poll_seconds=20)
        app = create_app(store, agent_settings=settings)
        runner = web.AppRunner(app, handler_cancellation=cancellation, **RUNNER_OPTIONS)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        gw = app[GATEWAY]
        account, _ = await gw.create_account("pull@example.com", "password123")
        device, token = await gw.create_device(account, "box")
        server = Server(port, runner, store, gw, account, device.id, token, aiohttp.ClientSession())
        started.append(server)
        return server

    yield go
    for s in started:
        s.store.gate.set()
        for w in s.sockets:
            w.transport.abort()
        await s.session.close()
        await s.runner.cleanup()


async def _parked(s: Server) -> None:
    """Wait until the server holds a pull for the device (the notifier has a waiter)."""
    notifier = s.gw.notifier
    await eventually(
        lambda: _true(s.device_id in notifier._waiters),
        "the pull to be parked",  # no public probe
    )


async def _true(value: bool) -> bool:
    return value


# -- (a) gone while parked ---------------------------------------------------------------------


@pytest.mark.parametrize("cancellation", [True, False], ids=["cancelling", "not-cancelling"])
async def test_a_pull_whose_client_left_while_parked_leases_nothing(
    start: Start, cancellation: bool
) -> None:
    s = await start(cancellation=cancellation)
    _, writer = await s.raw_pull({"wait": 20})
    await _parked(s)
    reset(writer)
    await eventually(lambda: _true(s.server_saw_every_client_leave()), "the server to see the RST")
    sms_id = await s.send("right after the cut")
    await asyncio.sleep(0.2)  # room for a wrongly surviving pull to wake and lease
    assert await s.state(sms_id) == (1, 0), "leased to a long poll whose client is gone"
    # The agent reconnects: the message is its, at the first attempt.
    status, answer = await s.agent("pull", {"wait": 0})
    assert status == 200 and [(m["id"], m["attempt"]) for m in answer["messages"]] == [(sms_id, 1)]


# -- (b) gone while the lease is taken or written ----------------------------------------------


@pytest.mark.parametrize("gate_at", ["before", "after"])
@pytest.mark.parametrize("cancellation", [True, False], ids=["cancelling", "not-cancelling"])
async def test_b_a_lease_nobody_received_goes_back_at_once_and_cannot_be_committed(
    start: Start, cancellation: bool, gate_at: str
) -> None:
    s = await start(cancellation=cancellation)
    sms_id = await s.send()
    s.store.gate_at = gate_at
    _, writer = await s.raw_pull({"wait": 0})
    await asyncio.wait_for(s.store.at_gate.wait(), 30)
    reset(writer)
    await eventually(lambda: _true(s.server_saw_every_client_leave()), "the server to see the RST")
    s.store.gate_at = None
    s.store.gate.set()
    # Back at status 1 within seconds, with a lease of LONG_LEASE seconds: handed back.
    await eventually(lambda: _is(s, sms_id, (1, 1)), "the lease handed back")
    [dead_lease] = s.store.lease_ids
    status, answer = await s.agent("commit", {"lease_id": dead_lease, "ids": [sms_id]})
    assert (status, answer) == (200, {"committed": [], "rejected": [sms_id]})
    status, answer = await s.agent("pull", {"wait": 0})
    assert [(m["id"], m["attempt"]) for m in answer["messages"]] == [(sms_id, 2)]
    status, answer = await s.agent("commit", {"lease_id": answer["lease_id"], "ids": [sms_id]})
    assert answer == {"committed": [sms_id], "rejected": []}
    assert await s.state(sms_id) == (3, 2)


async def _is(s: Server, sms_id: int, wanted: tuple[int, int]) -> bool:
    return await s.state(sms_id) == wanted


# -- (c) delivered, then the connection died ---------------------------------------------------


async def test_c_a_delivered_answer_stands_after_the_connection_dies(start: Start) -> None:
    s = await start()
    sms_id = await s.send()
    reader, writer = await s.raw_pull({"wait": 0})
    status, answer = await read_answer(reader)
    assert status == 200 and [m["id"] for m in answer["messages"]] == [sms_id]
    reset(writer)
    await eventually(lambda: _true(s.server_saw_every_client_leave()), "the server to see the RST")
    await asyncio.sleep(0.2)
    assert await s.state(sms_id) == (2, 1), "a delivered lease must wait for its commit"
    # The agent journaled it and commits from a new connection.
    status, got = await s.agent("commit", {"lease_id": answer["lease_id"], "ids": [sms_id]})
    assert got == {"committed": [sms_id], "rejected": []}


async def test_c_a_delivered_but_uncommitted_lease_expires_after_lease_seconds(
    start: Start,
) -> None:
    s = await start(lease_seconds=1)
    sms_id = await s.send()
    reader, writer = await s.raw_pull({"wait": 0})
    _, answer = await read_answer(reader)
    reset(writer)
    started = time.monotonic()
    await eventually(lambda: _is(s, sms_id, (1, 1)), "the lease to expire", 20)
    assert time.monotonic() - started > 0.5  # not handed back early: it expired
    status, got = await s.agent("commit", {"lease_id": answer["lease_id"], "ids": [sms_id]})
    assert got == {"committed": [], "rejected": [sms_id]}


# -- the newest pull of a device wins; `holding` ----------------------------------------------


async def test_a_newer_pull_of_the_device_ends_the_older_parked_one(start: Start) -> None:
    s = await start()
    old_reader, _ = await s.raw_pull({"wait": 20})  # its connection will never be read again
    await _parked(s)
    newer = asyncio.create_task(s.agent("pull", {"wait": 20}))
    status, answer = await read_answer(old_reader)
    assert status == 409 and answer["error"]["code"] == "conflict", answer
    sms_id = await s.send()
    status, answer = await asyncio.wait_for(newer, 30)
    assert status == 200 and [m["id"] for m in answer["messages"]] == [sms_id]


async def test_holding_hands_back_the_leases_the_agent_does_not_hold(start: Start) -> None:
    s = await start()
    first, second = await s.send("one"), await s.send("two")
    _, lost = await s.agent("pull", {"wait": 0, "max": 1})  # the answer the agent never got
    assert [m["id"] for m in lost["messages"]] == [first]
    _, kept = await s.agent("pull", {"wait": 0, "max": 1, "holding": []})
    assert [(m["id"], m["attempt"]) for m in kept["messages"]] == [(first, 2)]
    # holding names the open lease: it stays, the next message is leased beside it
    _, more = await s.agent("pull", {"wait": 0, "holding": [kept["lease_id"]]})
    assert [m["id"] for m in more["messages"]] == [second]
    _, got = await s.agent("commit", {"lease_id": lost["lease_id"], "ids": [first]})
    assert got == {"committed": [], "rejected": [first]}
    _, got = await s.agent("commit", {"lease_id": kept["lease_id"], "ids": [first]})
    assert got == {"committed": [first], "rejected": []}
    status, bad = await s.agent("pull", {"wait": 0, "holding": "x"})
    assert status == 400 and bad["error"]["code"] == "bad_request"
    status, bad = await s.agent("pull", {"wait": 0, "holding": [1]})
    assert status == 400 and "holding" in bad["error"]["message"]


# -- (a) against a real `simhive-server run` process -------------------------------------------


def _cli(*args: str) -> Any:
    out = subprocess.run([console_script("simhive-server"), *args], capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    return json.loads(out.stdout)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _post(url: str, token: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _seen(db: str, device_id: int) -> bool:
    """The device's lastseen is stamped (a pull stamps it before it parks)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT lastseen FROM devices WHERE id = ?", (device_id,)).fetchone()
    finally:
        conn.close()
    return row is not None and row[0] is not None


def test_a_real_server_process_leases_nothing_to_a_reset_long_poll(tmp_path: Path) -> None:
    db = str(tmp_path / "simhive.sqlite3")
    email, password = "proc@example.com", "process-password-1"
    _cli("account", "create", "--db", db, "--email", email, "--password", password)
    device = _cli("device", "create", "--db", db, "--email", email, "--title", "box")
    port = free_port()
    argv = [console_script("simhive-server"), "run", "--db", db, "--port", str(port),
            "--no-access-log"]  # fmt: skip
    with running(argv, log=tmp_path / "server.log", stop_signal=signal.SIGTERM):
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        token = _get(f"{base}/getdata/gettoken?email={email}&pass={password}")["token"]
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            sock.sendall(_request("/agent/v1/pull", device["token"], {"wait": 20}))
            # nothing is due: the pull parks right after stamping lastseen
            seen = lambda: _seen(db, device["device_id"])  # noqa: E731
            wait_until(seen, 30, "the pull to reach the server")
            time.sleep(0.3)
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        time.sleep(0.5)  # the server reads the RST
        sms = _get(f"{base}/getdata/addsms?token={token}&sendto=%2B4915752982212&body=cut"
                   f"&device_id={device['device_id']}")  # fmt: skip
        time.sleep(0.5)  # room for a wrongly surviving pull to wake and lease
        status = _get(f"{base}/getdata/getsmsstatus?token={token}&sms_id={sms['sms_id']}")
        assert int(status["status"]) == 1, "leased to a long poll whose client is gone"
        answer = _post(f"{base}/agent/v1/pull", device["token"], {"wait": 0})
        assert [(m["id"], m["attempt"]) for m in answer["messages"]] == [(sms["sms_id"], 1)]
