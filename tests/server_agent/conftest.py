"""Fixtures: the real app over a fresh SQLite file, in process, with fast background timings, and
a webhook receiver (a real aiohttp server on 127.0.0.1) that records what it gets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from simhive.server.api.compat import GATEWAY
from simhive.server.app import create_app
from simhive.server.background import BACKGROUND, BackgroundConfig
from simhive.server.core.agent import AgentSettings
from simhive.server.core.gateway import Gateway, Outgoing
from simhive.server.core.history import HistorySettings
from simhive.server.core.models import Account
from simhive.server.core.webhooks import RetryPolicy
from simhive.server.store.base import Store
from simhive.server.store.sqlite import SqliteStore

T = TypeVar("T")
LEASE_SECONDS = 1
FAST = BackgroundConfig(
    sweep_interval_seconds=0.2,
    webhook_timeout_seconds=5.0,
    webhook_idle_poll_seconds=0.5,
    webhook_retry=RetryPolicy(base_seconds=0.1, max_seconds=0.4, max_attempts=4),
)
SECRET = "s3cret-for-tests-0123456789"
# Far above any answer time (long polls are capped at 10 s here), far below pytest's 180 s: a
# request that hangs fails with its own traceback instead of a test-wide timeout.
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60)

# A dual-SIM hello as docs/agent-protocol.md shows it.
HELLO: dict[str, Any] = {
    "agent_version": "0.1.0",
    "device": {"title": "SIM800C-DS hall", "manufacturer": "SIMCOM_Ltd", "model": "SIM800C",
               "firmware": "1418B05SIM800C24", "imei": "867856030123456",
               "serialnumber": "host-a/ttyUSB0"},
    "sims": [{"slot": 0, "present": True, "active": True, "iccid": "8949226172233934327",
              "imsi": "262011234567890", "number": "+4915752982212", "operator": "Telekom.de",
              "operator_code": "26201", "carrier": "Telekom", "country_iso": "de",
              "registered": True, "roaming": False, "signal_dbm": -71},
             {"slot": 1, "present": True, "active": True, "iccid": "8949000000000000001",
              "number": "+4915700000001", "carrier": "o2", "country_iso": "de",
              "registered": True, "roaming": True}],
}  # fmt: skip


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, seconds: float = 15.0
) -> T:
    """Poll `probe` until it returns something truthy; generous timeout for loaded machines."""
    deadline = time.monotonic() + seconds
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str
    status: int = 0  # 0 while the receiver still holds the request


@dataclass
class Receiver:
    """A webhook endpoint: answers `fail_next` requests with 503, then 200."""

    server: TestServer | None = None
    got: list[Received] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    fail_next: int = 0
    always_fail: bool = False
    hold_paths: set[str] = field(default_factory=set)  # answered only after release()
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def handle(self, request: web.Request) -> web.Response:
        got = Received(dict(request.headers), await request.read(), request.path)
        self.got.append(got)
        if request.path in self.hold_paths:
            await asyncio.wait_for(self.released.wait(), 30)
        got.status = 503 if self.always_fail or self.fail_next > 0 else 200
        self.fail_next = max(0, self.fail_next - 1)
        self.answered.append(got.status)
        return web.Response(status=got.status, text="ok" if got.status == 200 else "busy")

    def release(self) -> None:
        self.released.set()

    def ok(self, path: str | None = None) -> list[Received]:
        """Requests answered 200, optionally only those to `path`."""
        return [r for r in self.got if r.status == 200 and (path is None or r.path == path)]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", rec.handle)
    rec.server = TestServer(app, host="127.0.0.1")
    await rec.server.start_server()
    yield rec
    rec.release()
    await rec.server.close()


@dataclass
class Env:
    client: TestClient[Any, Any]
    app: web.Application
    gw: Gateway
    account: Account
    token: str  # the account's compat token
    device_id: int
    device_token: str
    other_device_id: int
    other_token: str

    async def agent(
        self, route: str, body: Any, token: str | None = None, status: int = 200
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token or self.device_token}"}
        r = await self.client.post(
            f"/agent/v1/{route}", json=body, headers=headers, timeout=REQUEST_TIMEOUT
        )
        data: dict[str, Any] = await r.json()
        assert r.status == status, data
        return data

    async def compat(self, method: str, **params: Any) -> dict[str, Any]:
        query = {"token": self.token, **{k: str(v) for k, v in params.items()}}
        r = await self.client.get(f"/getdata/{method}", params=query, timeout=REQUEST_TIMEOUT)
        data: dict[str, Any] = await r.json()
        assert r.status == 200 and data["error"] == 0, data
        return data

    async def send(self, device_id: int | None = None, **kw: Any) -> int:
        req = Outgoing(
            kw.pop("sendto", "+4915752982212"), kw.pop("body", "hi"),
            device_id or self.device_id, **kw,
        )  # fmt: skip
        [sms_id] = await self.gw.send(self.account, req)
        return sms_id

    async def status(self, sms_id: int) -> int:
        return int((await self.compat("getsmsstatus", sms_id=sms_id))["status"])

    async def status_of(self, sms_id: int) -> tuple[int, str]:
        """Status and its compat description."""
        data = await self.compat("getsmsstatus", sms_id=sms_id)
        return int(data["status"]), str(data["status_description"])

    async def webhooks(self, store_device: int | None = None) -> list[dict[str, object]]:
        return await self.gw.store.webhook_rows(store_device)

    async def set_webhooks(self, receiver: Receiver, device_id: int | None = None) -> None:
        await self.gw.store.update_device_settings(
            device_id or self.device_id,
            {
                "webhook_status": receiver.url("/status"),
                "webhook_incoming": receiver.url("/incoming"),
                "webhook_secret": SECRET,
            },
        )


@dataclass
class Ids:
    account: Account
    token: str
    device_id: int
    device_token: str
    other_device_id: int
    other_token: str


class Servers:
    """Starts the app over one database file, as often as a test needs (restarts)."""

    def __init__(self, db_file: Path, make_store: Callable[[], Store] | None = None) -> None:
        self.db_file = db_file
        # tests/store/test_app_pg.py runs these suites again over PostgreSQL.
        self.make_store = make_store or (lambda: SqliteStore(self.db_file))
        self.clients: list[TestClient[Any, Any]] = []
        self.ids: Ids | None = None
        self.lease_seconds = LEASE_SECONDS  # a test that holds a lease on purpose sets more
        self.history = HistorySettings()  # the status history's retention (its pruner's timing)

    async def start(self) -> Env:
        settings = AgentSettings(lease_seconds=self.lease_seconds, long_poll_seconds=10)
        app = create_app(self.make_store(), agent_settings=settings)
        app[BACKGROUND].config = FAST
        app[BACKGROUND].history = self.history
        client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        self.clients.append(client)
        gw = app[GATEWAY]
        if self.ids is None:
            account, token = await gw.create_account("agent@example.com", "password123")
            device, device_token = await gw.create_device(account, "box")
            other, other_token = await gw.create_device(account, "other box")
            self.ids = Ids(account, token, device.id, device_token, other.id, other_token)
        i = self.ids
        return Env(client, app, gw, i.account, i.token, i.device_id, i.device_token,
                   i.other_device_id, i.other_token)  # fmt: skip

    async def stop(self, env: Env) -> None:
        await env.client.close()
        self.clients.remove(env.client)


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    s = Servers(tmp_path / "agent.sqlite3")
    try:
        yield s
    finally:
        for client in s.clients:
            await client.close()


@pytest.fixture
async def env(servers: Servers) -> Env:
    return await servers.start()
