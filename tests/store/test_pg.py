"""What only the PostgreSQL store has: both ways of getting a test server, NUL text, wake-ups and
background jobs shared by several servers (pg_cluster.py)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from simhive.server.core.errors import InvalidInput
from simhive.server.core.models import IncomingMessage, MessageFilter, NewMessage, ReportEvent
from simhive.server.core.notifier import WorkNotifier
from simhive.server.core.pools import SimOffer
from simhive.server.store.pg import PgStore
from simhive.server.store.pg_schema import LATEST_VERSION, lock_key
from tests.support.pg import PgServer, answers, scratch_database, throwaway_cluster
from tests.support.pg import eventually as pg_eventually
from tests.support.pg_plan import PlanCost, capture, explain

T0 = 1_000_000_000
WAIT = 20.0  # seconds: far above any real wake-up, so a failure is a lost one, not a slow one


async def eventually(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
    return await pg_eventually(probe, what, WAIT)


@pytest.fixture
def engine() -> str:
    return "postgresql"


def test_the_session_server_answers(pg: PgServer) -> None:
    # Here the PostgreSQL on localhost:5432 when it answers, else a throwaway cluster.
    assert answers(pg.url())


async def test_a_throwaway_cluster_serves_the_store() -> None:
    # The path taken where no PostgreSQL runs, taken here too: initdb + pg_ctl on a free port.
    with throwaway_cluster() as server, scratch_database(server) as url:
        assert server.origin == "throwaway cluster" and server.port != 5432
        store = PgStore(url)
        await store.open()
        try:
            account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
            device = await store.create_device(account.id, "d", "t", 1)
            ids = await store.insert_messages(
                [NewMessage(account.id, device.id, "+4915752982212", f"m{i}") for i in range(3)], 1
            )
            assert await store.count_messages(MessageFilter(account.id)) == 3 == len(ids)
            assert await store.migrate() == LATEST_VERSION
        finally:
            await store.close()
    assert not answers(server.url(), timeout=1.0)  # stopped and gone


async def test_concurrent_single_inserts_share_transactions(store: PgStore) -> None:
    account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await store.create_device(account.id, "d", "t", 1)
    before = store.groups
    n = 300
    ids = await asyncio.gather(
        *(store.insert_messages([NewMessage(account.id, device.id, "+49157", f"m{i}")], i)
          for i in range(n))
    )  # fmt: skip
    assert len({i for [i] in ids}) == n
    # requests that arrived together were committed together: far fewer transactions
    assert store.groups - before < n / 2, store.groups - before
    stored = {m.id: m.body for m in await store.list_messages(MessageFilter(account.id))}
    assert [stored[i] for [i] in ids] == [f"m{i}" for i in range(n)]


async def test_nul_text_is_refused_in_the_api_shape_and_replaced_when_received(
    store: PgStore,
) -> None:
    account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await store.create_device(account.id, "d", "t", 1)
    with pytest.raises(InvalidInput, match="NUL"):
        await store.insert_messages([NewMessage(account.id, device.id, "+49157", "a\x00b")], 1)
    with pytest.raises(InvalidInput, match="NUL"):
        await store.account_by_email("a\x00@example.com")
    [(_, sms_id)] = await store.store_incoming(
        account.id, device.id, [IncomingMessage("k", 0, "+49170", "x\x00y")], 1
    )
    got = await store.message_by_id(account.id, sms_id)
    assert got is not None and got.body == "x\ufffdy"


async def test_a_wakeup_on_one_server_reaches_a_poll_on_another(
    pair: tuple[PgStore, PgStore],
) -> None:
    a, b = pair
    on_a, on_b = WorkNotifier(), WorkNotifier()
    await a.share_wakeups(on_a)
    await b.share_wakeups(on_b)
    for device_id in (7, 8):
        on_b.prepare(device_id)
    waiting = asyncio.create_task(on_b.wait(7, WAIT))
    await asyncio.sleep(0)
    on_a.notify(7)
    assert await waiting, "the wake-up from server A never reached server B"
    assert b.cluster is not None and a.cluster is not None
    assert b.cluster.received >= 1
    assert a.cluster.received == 0  # a server ignores its own NOTIFY
    # many wake-ups at once travel together and all arrive
    for device_id in range(100, 400):
        on_b.prepare(device_id)
        on_a.notify(device_id)
    cluster = b.cluster
    await eventually(lambda: _async(cluster.received >= 301), "300 more wake-ups")


async def _async(value: Any) -> Any:
    return value


async def test_the_listener_comes_back_and_wakes_every_local_poll(
    pair: tuple[PgStore, PgStore], pg_url: str
) -> None:
    a, b = pair
    on_a, on_b = WorkNotifier(), WorkNotifier()
    await a.share_wakeups(on_a)
    await b.share_wakeups(on_b)
    on_b.prepare(5)
    waiting = asyncio.create_task(on_b.wait(5, WAIT))
    admin = await asyncpg.connect(pg_url)
    try:
        # Cut server B's listening connection: it reconnects and wakes its polls to look again.
        assert b.cluster is not None  # only this test's listeners: its channel names its schema
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%' || $1 || '%'",
            b.cluster.channel,
        )
        assert killed >= 1
    finally:
        await admin.close()
    assert await waiting
    on_b.prepare(6)
    second = asyncio.create_task(on_b.wait(6, WAIT))
    await asyncio.sleep(0)

    async def told() -> bool:
        on_a.notify(6)  # repeated until the new listener hears one
        await asyncio.sleep(0.05)
        return second.done()

    await eventually(told, "a wake-up after the reconnect")
    assert second.result()


async def test_outbox_rows_wake_the_webhook_sender_on_any_server(
    pair: tuple[PgStore, PgStore],
) -> None:
    a, b = pair
    woken = asyncio.Event()
    await b.share_wakeups(WorkNotifier(), on_webhooks=woken.set)
    account = await a.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await a.create_device(account.id, "d", "t", 1)
    await a.update_device_settings(device.id, {"webhook_incoming": "http://127.0.0.1:9/in"})
    await a.store_incoming(account.id, device.id, [IncomingMessage("k", 0, "+4917", "hi")], 1)
    async with asyncio.timeout(WAIT):
        await woken.wait()


async def test_each_job_runs_on_one_server_at_a_time_and_moves_on(
    pair: tuple[PgStore, PgStore], pg_url: str
) -> None:
    a, b = pair
    running: list[str] = []
    most = 0

    def job(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            nonlocal most
            running.append(name)
            most = max(most, len(running))
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(name)

        return run

    on_a = asyncio.create_task(a.run_once_in_cluster("sweeper", job("a")))
    on_b = asyncio.create_task(b.run_once_in_cluster("sweeper", job("b")))
    first = await eventually(lambda: _async(list(running)), "a leader")
    holders = await _lock_holders(pg_url, a.cluster.schema if a.cluster else "", "job:sweeper")
    assert holders == 1
    # The leader's server stops: the other one takes the job over.
    leader, follower = (on_a, on_b) if first == ["a"] else (on_b, on_a)
    leader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await leader
    second = await eventually(lambda: _async(list(running)), "the follower taking over")
    assert second != first
    assert most == 1, "two servers ran the job at once"
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower


async def _lock_holders(url: str, schema: str, name: str) -> int:
    key = lock_key(schema, name)
    conn = await asyncpg.connect(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1",
                (key >> 32) & 0xFFFFFFFF,
                key & 0xFFFFFFFF,
            )
        )
    finally:
        await conn.close()


async def test_reports_of_one_device_through_two_servers_apply_once(
    pair: tuple[PgStore, PgStore],
) -> None:
    # An agent whose report reached server A retries it on server B: applied once, both accept.
    a, b = pair
    account = await a.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await a.create_device(account.id, "d", "t", 1)
    await a.update_device_settings(device.id, {"webhook_status": "http://127.0.0.1:9/s"})
    [sms_id] = await a.insert_messages([NewMessage(account.id, device.id, "+49157", "x")], T0)
    lease = await a.lease_due(device.id, 5, "L", T0, T0 + 100)
    assert await b.commit_lease(device.id, "L", [sms_id], T0 + 1) == ([sms_id], [])
    events = [ReportEvent(f"e{i}", sms_id, "sent", T0 + 2) for i in range(5)]
    answers_ = await asyncio.gather(
        *(s.apply_events(device.id, events, T0 + 3) for s in (a, b, a, b))
    )
    assert all(sorted(x) == sorted(e.event_id for e in events) for x in answers_)
    assert [(r["status"]) for r in await a.webhook_rows()] == [6]
    assert lease.messages[0].id == sms_id


async def test_login_locks_hold_across_servers(pair: tuple[PgStore, PgStore]) -> None:
    from simhive.server.core.errors import AuthError
    from simhive.server.core.gateway import Gateway
    from simhive.server.core.limits import LOGIN_FAILURES_PER_PAIR

    a, b = Gateway(pair[0]), Gateway(pair[1])
    await a.create_account("owner@example.com", "right password")
    # A guesser spreads its guesses over both servers: together they reach the pair's limit.
    for n in range(LOGIN_FAILURES_PER_PAIR):
        with pytest.raises(AuthError, match="incorrect"):
            await (a, b)[n % 2].login("owner@example.com", f"guess {n}", client="10.0.0.9")
    for gateway in (a, b):
        with pytest.raises(AuthError, match="Too many failed logins"):
            await gateway.login("owner@example.com", "right password", client="10.0.0.9")
    # The owner, from another address, logs in on either server; a success there clears only
    # that address's record.
    assert (await b.login("owner@example.com", "right password", client="10.0.0.1")).id
    assert (await a.login("owner@example.com", "right password", client="10.0.0.1")).id


async def test_guesses_sent_together_to_two_servers_cannot_pass_the_limit(
    pair: tuple[PgStore, PgStore],
) -> None:
    from simhive.server.core.errors import AuthError
    from simhive.server.core.gateway import Gateway
    from simhive.server.core.limits import LOGIN_FAILURES_PER_PAIR

    a, b = Gateway(pair[0]), Gateway(pair[1])
    await a.create_account("owner@example.com", "right password")
    tries = 3 * LOGIN_FAILURES_PER_PAIR
    results = await asyncio.gather(
        *((a, b)[n % 2].login("owner@example.com", f"guess {n}", client="10.0.0.9")
          for n in range(tries)),
        return_exceptions=True,
    )  # fmt: skip
    judged = [r for r in results if isinstance(r, AuthError) and "incorrect" in r.message]
    refused = [r for r in results if isinstance(r, AuthError) and "Too many" in r.message]
    assert len(judged) == LOGIN_FAILURES_PER_PAIR and len(refused) == tries - len(judged)


async def _explained_check(
    store: PgStore, pg_url: str, schema: str, check: Callable[[], Awaitable[Any]]
) -> tuple[Any, PlanCost]:
    """The answer of a pull check, and what its statement costs explained (after ANALYZE: a
    server's tables have statistics, and the planner's choice depends on them): the larger of
    the plan for the parameters' values and the generic plan a prepared statement switches to
    after five runs when that costs no more."""
    seen = capture(store)
    answer = await check()
    [(sql, args)] = seen
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": schema})
    try:
        await conn.execute("ANALYZE messages")
        custom = await explain(conn, sql, args)
        generic = await explain(conn, sql, args, generic=True)
        return answer, PlanCost(
            max(custom.buffers, generic.buffers), max(custom.rows, generic.rows)
        )
    finally:
        await conn.close()


# A new schema: dead rows of earlier tests would show in the buffers its plans touch.
@pytest.mark.fresh_schema
async def test_the_pull_check_seeks_past_scheduled_messages(
    store: PgStore, pg_url: str, schema: str
) -> None:
    """With nothing due, the pull check reads the same few rows and buffers with 400 or 4,000
    scheduled messages waiting, pinned to the SIM and in its pool: its next due times are one
    MIN per SIM or pool and `urgent` value, each an index seek. (A MIN over `urgent IN (1, 0)`
    read every scheduled message: PostgreSQL 15 has no skip scan.)"""
    account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await store.create_device(account.id, "d", "t", 1)
    pool = await store.implicit_pool(account.id, None, 1)
    offers = [SimOffer(0, True, 5, 5), SimOffer(1, True, 5, 5)]
    await store.offer_sims(device.id, offers, 1)

    async def schedule(n: int, first: int) -> None:
        to = "+4915752982212"
        await store.insert_messages(
            [NewMessage(account.id, None, to, f"p{i}", pool_id=pool.id, timetosend=first + i,
                        urgent=i % 5 == 0) for i in range(n)]
            + [NewMessage(account.id, device.id, to, f"d{i}", sim=i % 2, timetosend=first + i,
                          urgent=i % 7 == 0) for i in range(n)],
            1,
        )  # fmt: skip

    def check() -> Awaitable[tuple[bool, int | None]]:
        return store.due_state_sims(device.id, account.id, offers, 10)

    await schedule(400, 1_000)
    answer, few = await _explained_check(store, pg_url, schema, check)
    assert answer == (False, 1_000)
    await schedule(3_600, 2_000)
    answer, many = await _explained_check(store, pg_url, schema, check)
    assert answer == (False, 1_000)
    # The old query read every waiting message: 2,000 then 16,000 rows, 52 then 376 buffers.
    assert many.rows <= few.rows <= 8, (few, many)
    assert many.buffers <= few.buffers + 8, (few, many)


# A new schema: dead rows of earlier tests would show in the buffers its plans touch.
@pytest.mark.fresh_schema
async def test_the_pull_check_reads_only_its_own_leases(
    store: PgStore, pg_url: str, schema: str
) -> None:
    """ "When does this device's next lease expire" reads the device's own leased messages, not
    every device's (through messages_lease_expiry) nor every message of the device (through
    messages_pull, where the SIM stands between device and status): the same few rows and
    buffers with 400 or 4,360 leased elsewhere and 100 or 4,000 of its own scheduled."""
    account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await store.create_device(account.id, "d", "t", 1)
    offers = [SimOffer(0, True, 5, 5)]
    await store.offer_sims(device.id, offers, 1)
    to = "+4915752982212"
    await store.insert_messages([NewMessage(account.id, device.id, to, "now")], 1)
    await store.lease_due(device.id, 10, "mine", 2, 9_000)  # expires after all the others'

    async def schedule(n: int) -> None:
        await store.insert_messages(
            [NewMessage(account.id, device.id, to, f"s{i}", timetosend=20_000 + i)
             for i in range(n)], 1,
        )  # fmt: skip

    async def lease_elsewhere(devices: int, each: int) -> None:
        for _ in range(devices):
            other = await store.create_device(account.id, "o", f"t{uuid.uuid4().hex}", 1)
            await store.insert_messages(
                [NewMessage(account.id, other.id, to, f"o{i}") for i in range(each)], 1
            )
            lease = await store.lease_due(other.id, each, uuid.uuid4().hex, 2, 5_000)
            assert len(lease.messages) == each

    def check() -> Awaitable[tuple[bool, int | None]]:
        return store.due_state_sims(device.id, account.id, offers, 10)

    await schedule(100)
    await lease_elsewhere(4, 100)
    answer, few = await _explained_check(store, pg_url, schema, check)
    assert answer == (False, 9_000)
    await schedule(3_900)
    await lease_elsewhere(40, 99)
    answer, many = await _explained_check(store, pg_url, schema, check)
    assert answer == (False, 9_000)
    # The old query: 1,002 then 16,722 rows; the new one without messages_device_leases: 401
    # then 4,361 (every leased message, through messages_lease_expiry).
    assert many.rows <= few.rows <= 8, (few, many)
    assert many.buffers <= few.buffers + 8, (few, many)
