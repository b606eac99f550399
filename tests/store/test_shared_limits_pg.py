"""Limits that hold across several servers on one PostgreSQL database (docs/scaling.md): an API
key's rate limit through two app instances at once, the login slow-downs counted by two servers
together, an account delete that takes its keys' buckets along, and single sends grouped into
one transaction that still stop exactly at a quota."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simhive.server.app import create_app
from simhive.server.core import quotas
from simhive.server.core.errors import AuthError
from simhive.server.core.gateway import Gateway
from simhive.server.core.key_rate import StoreKeyRate
from simhive.server.core.models import NewMessage
from simhive.server.core.native_models import QuotaExceeded
from simhive.server.core.ratelimit import Locked, LoginGuard, SharedLogins
from simhive.server.store.pg import PgStore
from tests.server._v1 import V1, started
from tests.store.conftest import Raw

T0 = 1_700_000_000_000_000  # wall-clock microseconds


@pytest.fixture
def engine() -> str:
    return "postgresql"


@pytest.fixture
async def two_apps(make_store: Any) -> AsyncIterator[tuple[V1, TestClient[Any, Any]]]:
    """The app twice on one schema: the first with its accounts and keys, the second bare."""
    async with (
        started(make_store()) as env,
        TestClient(TestServer(create_app(make_store()))) as other,
    ):
        yield env, other


async def test_a_key_rate_limit_holds_across_two_servers(
    two_apps: tuple[V1, TestClient[Any, Any]],
) -> None:
    env, other = two_apps
    assert isinstance(env.native.keys.limiter, StoreKeyRate)
    rate = 7
    _, secret = await env.native.keys.create(env.account, "busy", ["read"], rate_per_minute=rate)
    headers = {"Authorization": f"Bearer {secret}"}

    async def ask(n: int) -> int:
        client = (env.client, other)[n % 2]
        response = await client.get("/api/v1/balance", headers=headers)
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(ask(n) for n in range(40)))
    # Each server alone would let `rate` through: together they let exactly `rate` through.
    assert sorted(statuses) == [200] * rate + [429] * (40 - rate)
    response = await other.get("/api/v1/balance", headers=headers)
    assert response.status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60 // rate + 1


async def test_a_take_costs_one_statement_and_refills_with_time(
    pair: tuple[PgStore, PgStore],
) -> None:
    a, b = pair
    account = await a.create_account("a@example.com", "x", "h", "UTC", 1)
    # rate 6 a minute: one token every 10 s; the two servers take from one bucket.
    takes = [await (a, b)[n % 2].rate_take(42, account.id, 6, T0) for n in range(7)]
    assert [taken for taken, _ in takes] == [True] * 6 + [False]
    assert takes[5][1] == pytest.approx(0.0) and takes[6][1] == pytest.approx(0.0)
    taken, held = await b.rate_take(42, account.id, 6, T0 + 9_000_000)
    assert taken is False and held == pytest.approx(0.9)
    assert (await a.rate_take(42, account.id, 6, T0 + 10_000_000))[0]
    # A server whose clock lags the bucket's time gets no tokens from it, and takes none away.
    assert (await b.rate_take(42, account.id, 6, T0))[0] is False


async def test_login_slowdowns_are_counted_by_the_servers_together(
    pair: tuple[PgStore, PgStore],
) -> None:
    now = [T0]
    a, b = (SharedLogins(s, lambda: now[0], email_after=3, email_interval=2.0, max_wait=5.0)
            for s in pair)  # fmt: skip
    # Three failures for one email, from three addresses, over both servers.
    for n in range(3):
        server = (a, b)[n % 2]
        ids, delay = await server.begin("owner@example.com", f"10.0.0.{n}")
        assert delay == 0
        await server.end(ids, "owner@example.com", f"10.0.0.{n}", ok=False)
    # Now its attempts are spaced 2 s apart, whichever server they reach.
    delays = []
    for n in range(3):
        _, delay = await (b, a, b)[n].begin("owner@example.com", f"10.0.1.{n}")
        delays.append(delay)
    assert delays == [0.0, 2.0, 4.0]
    with pytest.raises(Locked) as refused:  # the next slot is 6 s away, past the 5 s wait
        await a.begin("owner@example.com", "10.0.1.9")
    assert refused.value.retry_after == pytest.approx(6.0)
    # Another email is not slowed down.
    assert (await b.begin("someone@example.com", "10.0.1.9"))[1] == 0


async def test_a_gateway_on_a_shared_store_waits_for_the_shared_slot(
    pair: tuple[PgStore, PgStore],
) -> None:
    gateways, delays = [], []

    class Recorded(SharedLogins):
        async def begin(self, email: str, client: str | None) -> tuple[list[int], float]:
            ids, delay = await super().begin(email, client)
            delays.append(delay)
            return ids, delay

    for store in pair:
        gw = Gateway(store)
        # What the first login would set up, with a short interval for the test.
        gw._asked_store = True
        gw.logins = LoginGuard(paced=False)
        gw.shared_logins = Recorded(store, gw.clock, email_after=2, email_interval=0.3)
        gateways.append(gw)
    a, b = gateways
    await a.create_account("owner@example.com", "right password")
    for n, gw in enumerate((a, b)):
        with pytest.raises(AuthError, match="incorrect"):
            await gw.login("owner@example.com", f"guess {n}", client=f"10.0.0.{n}")
    started = time.monotonic()
    results = await asyncio.gather(
        *(gw.login("owner@example.com", "right password", client=f"10.0.2.{n}")
          for n, gw in enumerate((a, b, a))),
    )  # fmt: skip
    assert all(r.email == "owner@example.com" for r in results)
    # Three slots 0.3 s apart over both servers, and each login waited for its own.
    assert sorted(delays[2:]) == pytest.approx([0.0, 0.3, 0.6], abs=0.05)
    assert time.monotonic() - started >= 0.6 - 0.05


async def test_the_first_login_on_a_shared_store_moves_the_slowdowns_there(
    pair: tuple[PgStore, PgStore],
) -> None:
    gw = Gateway(pair[0])
    await gw.create_account("owner@example.com", "right password")
    await gw.login("owner@example.com", "right password", client="10.0.0.1")
    assert gw.shared_logins is not None and gw.logins.paced is False


async def test_an_account_delete_takes_its_keys_buckets(store: PgStore, raw: Raw) -> None:
    account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
    keeper = await store.create_account("k@example.com", "x", "h2", "UTC", 1)
    await store.rate_take(1, account.id, 10, T0)
    await store.rate_take(2, keeper.id, 10, T0)
    await store.delete_account(account.id, T0)
    assert await raw.rows("SELECT key_id, account_id FROM rate_buckets") == [(2, keeper.id)]


async def test_single_sends_grouped_together_stop_exactly_at_the_quota(
    pair: tuple[PgStore, PgStore],
) -> None:
    a, b = pair
    account = await a.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await a.create_device(account.id, "d", "t", 1)
    await a.set_account_quota(account.id, 10, None)
    meters = quotas.meters(account.id, None, T0)
    message = NewMessage(account.id, device.id, "+4915752982212", "hi")

    async def send_at_once(n: int) -> list[list[int] | BaseException]:
        return await asyncio.gather(
            *((a, b)[i % 2].insert_messages([message], T0, None, meters) for i in range(n)),
            return_exceptions=True,
        )

    first = await send_at_once(8)  # within the quota: they share transactions
    assert all(isinstance(r, list) for r in first) and a.groups + b.groups >= 1
    then = await send_at_once(20)  # 2 left: a group past it is retried send by send
    assert sum(isinstance(r, list) for r in then) == 2
    assert all(isinstance(r, (list, QuotaExceeded)) for r in then)
    assert await a.quota_used(account.id, 0, quotas.period_keys(T0)) == [10, 10]
