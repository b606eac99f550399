"""The console's and /metrics' queries (ConsoleStore) on both engines (conftest's `engine`):
the same rows in, the same answers out, from the message list's filters to the chart's hours and
the metrics histograms; and console login sessions, which live in the database so that every
server of one database knows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from simhive.server.core.models import IncomingMessage, NewMessage
from simhive.server.core.security import hash_token
from simhive.server.core.sessions import Sessions
from simhive.server.store.base import Store
from simhive.server.store.console_base import ConsoleFilter, ConsoleStore, HourCount
from simhive.server.store.console_engine import console_store
from simhive.server.store.pg import PgStore
from simhive.server.store.sqlite import SqliteStore
from tests.support.testdb import AppDb

US = 1_000_000
HOUR = 3600 * US
T0 = 1_700_000_000 * US  # 2023-11-14 22:13:20 UTC: hour 472222 since the epoch


@dataclass
class Setup:
    store: Store
    reads: ConsoleStore
    db: AppDb
    account: int
    device: int
    other_account: int


@pytest.fixture
async def setup(store: Store, schema: str) -> AsyncIterator[Setup]:
    if isinstance(store, SqliteStore):
        db = AppDb(path=store.path)
    else:
        assert isinstance(store, PgStore)
        db = AppDb(url=store.url, schema=schema)
    account = await store.create_account("a@example.com", "x", "h1", "UTC", T0)
    other = await store.create_account("b@example.com", "x", "h2", "UTC", T0)
    device = await store.create_device(account.id, "dev", "d1", T0)
    reads = console_store(store)
    assert reads is not None
    await reads.open()
    yield Setup(store, reads, db, account.id, device.id, other.id)
    await reads.close()


async def _send(s: Setup, *bodies: str, to: str = "+4915100000000", sim: int = 0) -> list[int]:
    msgs = [NewMessage(s.account, s.device, to, body, sim=sim) for body in bodies]
    return await s.store.insert_messages(msgs, T0)


async def test_the_engine_gets_its_own_console_queries(setup: Setup, engine: str) -> None:
    assert type(setup.reads).__name__ == ("SqliteConsoleStore" if engine == "sqlite" else
                                          "PgConsoleStore")  # fmt: skip


async def test_message_search_filters_and_pages(setup: Setup) -> None:
    s = setup
    ids = await _send(s, "Hello Needle", "50% off", "under_score", "plain")
    (other,) = await _send(s, "needle too", to="+4917700000000", sim=1)
    await s.store.store_incoming(
        s.account, s.device, [IncomingMessage("k", 0, "+4917700000000", "needle in")], T0 + 10
    )

    async def found(**kw: object) -> list[int]:
        flt = ConsoleFilter(s.account, **kw)  # type: ignore[arg-type]
        return [m.id for m in await s.reads.search_messages(flt)]

    everything = await found()
    assert everything == sorted(everything, reverse=True) and len(everything) == 6
    assert await found(search="NEEDLE", direction="out") == [other, ids[0]]  # any case
    assert await found(search="50%") == [ids[1]]  # % and _ are literal
    assert await found(search="r_s") == [ids[2]]
    assert await found(search="%") == [ids[1]]
    assert await found(number="77000", direction="out") == [other]
    assert len(await found(direction="in")) == 1
    assert await found(status=(1,), device_id=s.device, limit=2) == [other, ids[3]]
    assert await found(before_id=ids[2]) == [ids[1], ids[0]]
    assert await found(created_from=T0 + 1) == everything[:1]  # the incoming one, stored later
    assert await found(created_to=T0 - 1) == []
    assert await s.reads.search_messages(ConsoleFilter(s.other_account)) == []


async def test_overview_counts_and_readiness(setup: Setup) -> None:
    s = setup
    await _send(s, "a", "b")
    (sent,) = await _send(s, "c", sim=1)
    await s.db.rows("UPDATE messages SET status = 6, senttime = ? WHERE id = ?", T0, sent)
    assert await s.reads.queue_depth(s.account) == {(s.device, 0): 2}
    by_sim = {(s.device, 0): {1: 2}, (s.device, 1): {6: 1}}
    assert await s.reads.counts_since(s.account, T0) == by_sim
    assert await s.reads.counts_since(s.account, T0 + 1) == {}
    assert await s.reads.queue_depth(s.other_account) == {}
    await s.db.rows(
        "INSERT INTO sim_ready(device_id, slot, ready, reason, pool_room, offered)"
        " VALUES (?, 0, 1, '', 0, ?), (?, 1, 0, 'paced', 0, ?)",
        s.device, T0, s.device, T0,
    )  # fmt: skip
    assert await s.reads.sim_readiness_of([s.device]) == {
        (s.device, 0): (True, ""),
        (s.device, 1): (False, "paced"),
    }
    assert await s.reads.sim_readiness_of([]) == {}


async def test_inbox_conversations(setup: Setup) -> None:
    s = setup
    a, b = "+491701111111", "+491702222222"
    await s.store.store_incoming(
        s.account, s.device,
        [IncomingMessage("1", 0, a, "a1"), IncomingMessage("2", 0, b, "b1"),
         IncomingMessage("3", 0, a, "a2")],
        T0,
    )  # fmt: skip
    (reply,) = await _send(s, "answer", to=a)
    talks = await s.reads.conversations(s.account, 10)
    assert [(c.number, c.last_body, c.incoming) for c in talks] == [(a, "a2", 2), (b, "b1", 1)]
    assert [m.body for m in await s.reads.conversation(s.account, a, 10)] == ["a1", "a2", "answer"]
    assert [m.id for m in await s.reads.conversation(s.account, a, 1)] == [reply]
    assert await s.reads.conversations(s.other_account, 10) == []


async def test_cancel_only_what_nobody_took(setup: Setup) -> None:
    s = setup
    first, taken = await _send(s, "cancel me", "leased")
    await s.db.rows("UPDATE messages SET status = 2, lease_id = 'L' WHERE id = ?", taken)
    assert not await s.reads.cancel_message(s.other_account, first, 9, "no", T0 + 1)
    assert await s.reads.cancel_message(s.account, first, 9, "by the operator", T0 + 1)
    assert await s.db.row(
        "SELECT status, failure_code, failure_reason, status_changed FROM messages WHERE id = ?",
        first,
    ) == (9, "cancelled", "by the operator", T0 + 1)
    assert not await s.reads.cancel_message(s.account, first, 9, "again", T0 + 2)
    assert not await s.reads.cancel_message(s.account, taken, 9, "taken", T0 + 2)


async def test_webhook_outbox_and_redeliver(setup: Setup) -> None:
    s = setup
    await s.store.update_device_settings(
        s.device, {"webhook_status": "http://127.0.0.1:9/hook", "webhook_secret": "s" * 32}
    )
    (sms_id,) = await _send(s, "hooked")
    await s.db.rows(
        "UPDATE messages SET status = 6, status_changed = ? WHERE id = ?", T0 + 1, sms_id
    )  # the trigger queues the webhook
    (row,) = await s.reads.outbox(s.account, None, 10)
    assert (row.sms_id, row.status, row.state, row.kind) == (sms_id, 6, "pending", "status")
    assert await s.reads.message_outbox(sms_id) == [row]
    assert await s.reads.outbox(s.account, "dead", 10) == []
    assert await s.reads.outbox(s.other_account, None, 10) == []
    assert not await s.reads.redeliver(s.account, row.id, T0 + 5)  # still pending
    await s.db.rows("UPDATE webhook_outbox SET state = 'dead', attempts = 8 WHERE id = ?", row.id)
    assert not await s.reads.redeliver(s.other_account, row.id, T0 + 5)
    assert await s.reads.redeliver(s.account, row.id, T0 + 5)
    (again,) = await s.reads.outbox(s.account, "pending", 10)
    assert (again.id, again.attempts, again.next_attempt) == (row.id, 0, T0 + 5)


async def test_message_parts(setup: Setup) -> None:
    s = setup
    (sms_id,) = await _send(s, "long")
    await s.db.rows(
        "INSERT INTO message_parts(sms_id, part_index, reference, report_status, reported_at)"
        " VALUES (?, 1, 8, NULL, NULL), (?, 0, 7, 0, ?)",
        sms_id, sms_id, T0,
    )  # fmt: skip
    parts = await s.reads.message_parts(sms_id)
    assert [(p.part_index, p.reference, p.report_status, p.reported_at) for p in parts] == [
        (0, 7, 0, T0),
        (1, 8, None, None),
    ]


async def test_hourly_counts_by_utc_hour(setup: Setup) -> None:
    s = setup
    ids = await _send(s, "a", "b", "c", "d")
    hour = T0 // HOUR
    for sms_id, status, sent in (
        (ids[0], 7, hour * HOUR),  # the first microsecond of the hour
        (ids[1], 6, hour * HOUR + HOUR - 1),  # its last
        (ids[2], 7, (hour + 1) * HOUR),
        (ids[3], 6, hour * HOUR - 1),  # before the window
    ):
        await s.db.rows(
            "UPDATE messages SET status = ?, senttime = ? WHERE id = ?", status, sent, sms_id
        )
    rows = sorted(await s.reads.hourly(s.account, hour * HOUR), key=lambda r: r.hour)
    assert rows == [HourCount(s.device, 0, hour, 2, 1), HourCount(s.device, 0, hour + 1, 1, 1)]
    assert await s.reads.hourly(s.other_account, hour * HOUR) == []


async def test_metrics_snapshot(setup: Setup) -> None:
    s = setup
    ids = await _send(s, "a", "b", "c")
    pool = await s.store.create_pool(s.account, "bulk", "round-robin", False, T0)
    waiting = NewMessage(s.account, None, "+4915199", "p", pool_id=pool.id)
    await s.store.insert_messages([waiting], T0)
    for sms_id, status, latency, delay in ((ids[0], 7, 0.2, 3.0), (ids[1], 8, 40.0, 0.5)):
        sent = T0 + int(latency * US)
        await s.db.rows(
            "UPDATE messages SET status = ?, senttime = ?, delivered_time = ? WHERE id = ?",
            status, sent, sent + int(delay * US), sms_id,
        )  # fmt: skip
    snap = await s.reads.metrics((0.25, 60.0), (1.0, 5.0))
    assert snap.messages == {
        (7, "out", s.device, 0): 1,
        (8, "out", s.device, 0): 1,
        (1, "out", s.device, 0): 1,
        (1, "out", None, None): 1,
    }
    assert snap.queue_depth == {(s.device, 0): 1}
    assert snap.pool_waiting == {f"{s.account}/bulk": 1}
    assert (snap.send_latency.buckets, snap.send_latency.count) == ([(0.25, 1), (60.0, 2)], 2)
    assert snap.send_latency.total == pytest.approx(40.2)
    assert (snap.report_delay.buckets, snap.report_delay.count) == ([(1.0, 1), (5.0, 2)], 2)
    assert snap.report_delay.total == pytest.approx(3.5)
    assert (snap.webhooks, snap.webhook_failed_attempts) == ({}, 0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


async def test_sessions_expire_when_idle_and_at_their_maximum_age(setup: Setup) -> None:
    clock = Clock()
    sessions = Sessions(setup.reads, idle_seconds=60, max_seconds=300, clock=clock,
                        touch_seconds=1)  # fmt: skip
    token, made = await sessions.start(setup.account)
    found = await sessions.get(token)
    assert found is not None and (found.account_id, found.csrf) == (setup.account, made.csrf)
    clock.now += 59 * US
    assert await sessions.get(token) is not None  # used: the idle clock starts again
    clock.now += 59 * US
    assert await sessions.peek(token) is not None
    clock.now += 2 * US  # peek does not count as use: 61 s idle now
    assert await sessions.get(token) is None
    assert await setup.db.rows("SELECT token_hash FROM console_sessions") == []  # gone for good

    token, _ = await sessions.start(setup.account)
    for _ in range(9):  # in constant use, but only up to the maximum age
        clock.now += 31 * US
        assert await sessions.get(token) is not None
    clock.now += 31 * US
    assert await sessions.get(token) is None


async def test_sessions_are_stored_hashed_and_end_at_logout(setup: Setup) -> None:
    sessions = Sessions(setup.reads)
    first, s1 = await sessions.start(setup.account)
    second, _ = await sessions.start(setup.account)
    await sessions.end(first)
    assert await sessions.get(first) is None and await sessions.get(second) is not None
    stored = await setup.db.rows("SELECT token_hash, csrf FROM console_sessions")
    assert stored == [(hash_token(second), stored[0][1])]  # only the digest of the cookie
    assert s1.csrf_ok(s1.csrf) and not s1.csrf_ok(None) and not s1.csrf_ok(s1.csrf + "x")
    await sessions.end_account(setup.other_account)
    assert await sessions.get(second) is not None
    await sessions.end_account(setup.account)
    assert await setup.db.rows("SELECT * FROM console_sessions") == []


async def test_a_session_made_on_one_server_works_on_another(setup: Setup, make_store: Any) -> None:
    """Two servers on one database: login on A, pages and notes on B, logout on B ends it on A."""
    other_store: Store = make_store()
    await other_store.open()
    other_reads = console_store(other_store)
    assert other_reads is not None
    await other_reads.open()
    try:
        a, b = Sessions(setup.reads), Sessions(other_reads)
        clock = Clock()
        a.clock = b.clock = clock
        token, made = await a.start(setup.account)
        on_b = await b.get(token)
        assert on_b is not None and on_b.csrf == made.csrf
        on_b.flash.append(("ok", "Saved."))
        await b.save_flash(token, on_b)
        on_a = await a.get(token)
        assert on_a is not None and on_a.flash == [("ok", "Saved.")]
        on_a.flash.clear()  # shown on a page
        await a.save_flash(token, on_a)
        again = await b.peek(token)
        assert again is not None and again.flash == []
        clock.now += 20 * 60 * US
        assert await b.get(token) is not None  # used on B: A sees it as used too
        clock.now += 20 * 60 * US
        assert await a.peek(token) is not None
        await b.end(token)
        assert await a.get(token) is None
    finally:
        await other_reads.close()
        await other_store.close()
