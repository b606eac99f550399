"""Journal semantics: crash recovery never resends, leases, idempotent inbox, ordered events."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from simhive.agent.journal import Journal, JournalError, LeasedMessage
from simhive.agent.modem.base import IncomingSms

DEV = "hall"


def lm(i: int, sim: int = 0, urgent: bool = False) -> LeasedMessage:
    return LeasedMessage(
        id=i, to=f"+49151000000{i % 100:02d}", body=f"m{i}", sim=sim, urgent=urgent
    )


async def commit_all(j: Journal, ids: list[int], lease: str = "L1") -> None:
    got = await j.add_leased(DEV, lease, [lm(i) for i in ids], 100.0)
    assert got == ids
    await j.apply_commit(DEV, lease, got, [])


async def test_dispatching_at_startup_becomes_unknown_and_is_never_due(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    await j.open()
    await commit_all(j, [1, 2])
    assert await j.begin_dispatch(DEV, 1, 101.0)
    await j.close()  # the "crash": the row is left in dispatching

    j2 = Journal(tmp_path / "j.db")
    await j2.open()
    assert await j2.recover(200.0) == [(DEV, 1)]
    assert await j2.message_state(DEV, 1) == "unknown"
    # Only message 2 is still to send; 1 is never handed out again.
    due = await j2.next_due(DEV, 0, 300.0)
    assert due is not None and due.id == 2
    events = await j2.pending_events(DEV, "report", 10)
    assert [e.event_id for e in events] == ["1:unknown"]
    assert events[0].body["type"] == "unknown" and "not resent" in events[0].body["reason"]
    # A second recovery finds nothing more.
    assert await j2.recover(201.0) == []
    await j2.close()


async def test_begin_dispatch_only_once(journal: Journal) -> None:
    await commit_all(journal, [5])
    assert await journal.begin_dispatch(DEV, 5, 1.0)
    assert not await journal.begin_dispatch(DEV, 5, 2.0)


async def test_commit_keeps_committed_and_forgets_rejected(journal: Journal) -> None:
    ids = await journal.add_leased(DEV, "L1", [lm(1), lm(2), lm(3)], 1.0)
    assert await journal.open_leases(DEV) == {"L1": [1, 2, 3]}
    await journal.apply_commit(DEV, "L1", [1, 3], [2])
    assert await journal.message_state(DEV, 1) == "committed"
    assert await journal.message_state(DEV, 2) is None
    assert await journal.open_leases(DEV) == {}
    assert ids == [1, 2, 3]
    assert await journal.backlog(DEV) == 2


async def test_re_leased_message_already_dispatched_is_not_committed_again(
    journal: Journal,
) -> None:
    await commit_all(journal, [7])
    await journal.begin_dispatch(DEV, 7, 1.0)
    await journal.finish_sent(DEV, 7, 0, [12], 2.0)
    # The server hands out 7 again (it never saw our commit answer): we must not own it twice.
    assert await journal.add_leased(DEV, "L2", [lm(7), lm(8)], 3.0) == [8]
    assert await journal.message_state(DEV, 7) == "sent"


async def test_re_leased_committed_message_keeps_one_row(journal: Journal) -> None:
    await commit_all(journal, [9])
    assert await journal.add_leased(DEV, "L2", [lm(9)], 3.0) == [9]
    await journal.apply_commit(DEV, "L2", [9], [])
    assert await journal.backlog(DEV) == 1


async def test_urgent_first_then_oldest_and_retry_time(journal: Journal) -> None:
    await journal.add_leased(DEV, "L", [lm(1), lm(2, urgent=True), lm(3), lm(4, sim=1)], 1.0)
    await journal.apply_commit(DEV, "L", [1, 2, 3, 4], [])
    order = []
    for _ in range(3):
        m = await journal.next_due(DEV, 0, 10.0)
        assert m is not None
        order.append(m.id)
        await journal.begin_dispatch(DEV, m.id, 10.0)
        if m.id == 1:
            await journal.finish_retry(DEV, 1, 50.0, "CMS 42", 10.0)
        else:
            await journal.finish_sent(DEV, m.id, 0, [m.id], 10.0)
    assert order == [2, 1, 3]
    assert await journal.next_due(DEV, 0, 20.0) is None  # 1 waits for its retry time
    assert await journal.next_wakeup(DEV, [0]) == 50.0
    m = await journal.next_due(DEV, 0, 50.0)
    assert m is not None and m.id == 1 and m.attempts == 1
    slot1 = await journal.next_due(DEV, 1, 10.0)
    assert slot1 is not None and slot1.id == 4


async def test_report_events_in_order_and_idempotent(journal: Journal) -> None:
    await commit_all(journal, [1, 2, 3])
    for i in (1, 2, 3):
        await journal.begin_dispatch(DEV, i, 5.0)
    await journal.finish_sent(DEV, 2, 0, [40, 41], 6.0)
    await journal.finish_failed(DEV, 1, status=9, code="CMS 21", reason="rejected", now=7.0)
    await journal.finish_unknown(DEV, 3, "link lost", 8.0)
    assert await journal.finish_delivery(DEV, 2, True, 9.0)
    assert not await journal.finish_delivery(DEV, 2, True, 9.5)  # already final: no 2nd event
    pending = await journal.pending_events(DEV, "report", 100)
    assert [p.event_id for p in pending] == ["2:sent", "1:failed", "3:unknown", "2:delivered"]
    assert pending[0].body["parts"] == [
        {"index": 0, "reference": 40},
        {"index": 1, "reference": 41},
    ]
    assert pending[1].body["status"] == 9 and pending[1].body["code"] == "CMS 21"
    await journal.events_done(DEV, "report", ["2:sent", "1:failed"])
    left = await journal.pending_events(DEV, "report", 100)
    assert [p.event_id for p in left] == ["3:unknown", "2:delivered"]
    # Same event id again (e.g. a repeated write) is one event.
    await journal.add_event(DEV, "report", left[0].body)
    assert await journal.count_pending_events(DEV, "report") == 2


async def test_inbox_is_idempotent_on_key(journal: Journal) -> None:
    now = datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC)
    sms = IncomingSms(
        slot=1, sender="+4917012345", text="Hello", sent_at=now, received_at=now, key="k1"
    )
    assert await journal.add_incoming(DEV, sms)
    assert not await journal.add_incoming(DEV, sms)
    other = IncomingSms(
        slot=0,
        sender="+4917099999",
        text="Second",
        sent_at=None,
        received_at=now,
        key="k2",
        parts=2,
        incomplete=True,
    )
    assert await journal.add_incoming(DEV, other)
    pending = await journal.pending_incoming(DEV, 10)
    assert [p["key"] for p in pending] == ["k1", "k2"]
    assert pending[0]["sim"] == 1 and pending[0]["from"] == "+4917012345"
    assert pending[1]["incomplete"] is True and pending[1]["sent_at"] is None
    await journal.mark_forwarded(DEV, [("k1", 77)])
    assert await journal.is_forwarded(DEV, "k1")
    assert not await journal.is_forwarded(DEV, "k2")
    assert [p["key"] for p in await journal.pending_incoming(DEV, 10)] == ["k2"]
    # Devices are separate namespaces.
    assert await journal.add_incoming("other", sms)


async def test_sent_times_feed_pacing_after_restart(journal: Journal) -> None:
    await commit_all(journal, [1, 2])
    for i, t in ((1, 100.0), (2, 200.0)):
        await journal.begin_dispatch(DEV, i, t)
        await journal.finish_sent(DEV, i, 0, [i, i + 10], t)
    assert await journal.sent_times(DEV, 0, 150.0) == [200.0]
    assert await journal.sent_times(DEV, 0, 0.0) == [100.0, 200.0]


async def test_unusable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match="not a usable journal"):
        await Journal(bad).open()


async def test_prune_forgets_only_finished_and_reported_history(journal: Journal) -> None:
    await commit_all(journal, [1, 2, 3, 4])
    for i in (1, 2, 3):
        await journal.begin_dispatch(DEV, i, 10.0)
    await journal.finish_sent(DEV, 1, 0, [5], 10.0)
    await journal.finish_delivery(DEV, 1, True, 11.0)
    await journal.finish_failed(DEV, 2, status=9, code="", reason="x", now=12.0)
    await journal.finish_sent(DEV, 3, 0, [6], 13.0)  # sent, report pending: still open work
    await journal.events_done(DEV, "report", ["1:sent", "1:delivered"])  # 2:failed not yet
    now = datetime.now(UTC)
    await journal.add_incoming(
        DEV,
        IncomingSms(slot=0, sender="+491", text="old", sent_at=None, received_at=now, key="old"),
    )
    await journal.mark_forwarded(DEV, [("old", 1)])
    await journal.prune(before=1000.0)
    assert await journal.message_state(DEV, 1) is None  # delivered and reported: gone
    assert await journal.message_state(DEV, 2) == "failed"  # its event is not accepted yet
    assert await journal.message_state(DEV, 3) == "sent"
    assert await journal.message_state(DEV, 4) == "committed"
    assert await journal.is_forwarded(DEV, "old")  # received now, newer than the cut-off
    await journal.prune(before=now.timestamp() + 10)
    assert not await journal.is_forwarded(DEV, "old")
    assert [e.event_id for e in await journal.pending_events(DEV, "report", 10)] == [
        "2:failed",
        "3:sent",
    ]


async def test_concurrent_writes_share_one_commit(journal: Journal) -> None:
    """Sixteen dispatchers marking their message `dispatching` at once: one fsync, not 16."""
    await commit_all(journal, list(range(1, 17)))
    before = journal.store.stats.transactions
    marked = await asyncio.gather(*(journal.begin_dispatch(DEV, i, 5.0) for i in range(1, 17)))
    assert marked == [True] * 16
    assert journal.store.stats.transactions - before < 16
    assert journal.store.stats.largest_batch > 1
    assert {await journal.message_state(DEV, i) for i in range(1, 17)} == {"dispatching"}


async def test_one_failing_write_in_a_group_rolls_back_alone(journal: Journal) -> None:
    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO outbox (device) VALUES ('x')")  # violates NOT NULL

    await commit_all(journal, [1, 2])
    good = journal.store.write_nowait(
        lambda c: c.execute("UPDATE outbox SET state = 'dispatching' WHERE id = 1").rowcount
    )
    failing = journal.store.write_nowait(bad)
    other = journal.begin_dispatch(DEV, 2, 1.0)
    assert await good == 1
    with pytest.raises(sqlite3.IntegrityError):
        await failing
    assert await other
    assert await journal.message_state(DEV, 1) == "dispatching"


async def test_a_group_with_a_failing_write_is_run_again_without_it(journal: Journal) -> None:
    """Groups run without a SAVEPOINT per op; when one op fails, the group is undone and run
    again op by op: the others' rows are there once, with the results of that one run."""
    seen: list[str] = []
    journal.store._wconn.set_trace_callback(seen.append)  # type: ignore[union-attr]

    def add(event_id: str) -> Callable[[sqlite3.Connection], int]:
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO events (device, channel, event_id, body) VALUES (?, 'report', ?,"
                " '{}')", (DEV, event_id),
            )  # fmt: skip
            return int(cur.lastrowid or 0)

        return op

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO outbox (device) VALUES ('x')")  # violates NOT NULL

    ok = [journal.store.write_nowait(add(f"a{i}")) for i in range(3)]
    assert [await f for f in ok] == [1, 2, 3]
    assert not [s for s in seen if "SAVEPOINT" in s]  # a group that succeeds needs none
    first = journal.store.write_nowait(add("b1"))
    failing = journal.store.write_nowait(bad)
    last = journal.store.write_nowait(add("b2"))
    assert await first == 4 and await last == 5  # one run each that counts
    with pytest.raises(sqlite3.IntegrityError):
        await failing
    assert [s for s in seen if "SAVEPOINT" in s]  # the second run, op by op
    rows = await journal.pending_events(DEV, "report", 10)
    assert [(e.seq, e.event_id) for e in rows] == [
        (1, "a0"), (2, "a1"), (3, "a2"), (4, "b1"), (5, "b2"),
    ]  # fmt: skip


async def test_settled_waits_for_every_write_queued_before_it(journal: Journal) -> None:
    await journal.settled()  # nothing queued: at once
    before = journal.store.stats.transactions
    await journal.settled()
    assert journal.store.stats.transactions == before  # and no transaction of its own
    await commit_all(journal, [1])
    queued = journal.finish_sent_nowait(DEV, 1, 0, [9], 2.0)
    assert not queued.done()
    await journal.settled()
    assert queued.done()
    assert await journal.message_state(DEV, 1) == "sent"


async def test_a_sent_outcome_not_waited_for_is_on_disk_with_the_next_write(
    tmp_path: Path,
) -> None:
    j = Journal(tmp_path / "j.db")
    await j.open()
    await commit_all(j, [1, 2])
    assert await j.begin_dispatch(DEV, 1, 1.0)
    pending = j.finish_sent_nowait(DEV, 1, 0, [9], 2.0)
    assert await j.begin_dispatch(DEV, 2, 3.0)  # queued later, so committed no earlier
    assert pending.done() and pending.exception() is None
    await j.close()
    j2 = Journal(tmp_path / "j.db")
    await j2.open()
    assert await j2.recover(4.0) == [(DEV, 2)]
    assert await j2.message_state(DEV, 1) == "sent"
    await j2.close()


async def test_sent_messages_without_a_final_report_become_unknown_after_the_timeout(
    journal: Journal,
) -> None:
    await commit_all(journal, [1, 2, 3, 4])
    for i in (1, 2, 3, 4):
        await journal.begin_dispatch(DEV, i, 100.0)
    await journal.finish_sent(DEV, 1, 0, [11], 100.0)  # no report at all
    await journal.finish_sent(DEV, 2, 0, [21, 22], 100.0)  # one of two parts reported
    await journal.apply_report(DEV, 2, 0, 0x00, lambda sts: (None, ""), 150.0)
    await journal.finish_sent(DEV, 3, 0, [31], 100.0)
    await journal.finish_delivery(DEV, 3, True, 150.0)  # delivered: untouched
    await journal.finish_sent(DEV, 4, 0, [41], 500.0)  # sent later: not overdue yet
    why = "no final delivery report within 300 s"
    assert await journal.expire_unreported(DEV, 400.0, 401.0, why) == [1, 2]
    assert await journal.expire_unreported(DEV, 400.0, 402.0, why) == []  # once only
    assert [await journal.message_state(DEV, i) for i in (1, 2, 3, 4)] == [
        "unknown",
        "unknown",
        "delivered",
        "sent",
    ]
    events = {e.event_id: e.body for e in await journal.pending_events(DEV, "report", 20)}
    assert events["1:unknown"]["reason"] == f"{why} (0 of 1 part report(s) received)"
    assert events["2:unknown"]["reason"] == f"{why} (1 of 2 part report(s) received)"
    assert "3:unknown" not in events and "4:unknown" not in events
    # A report that comes after all changes nothing: the message is final.
    await journal.apply_report(DEV, 1, 0, 0x00, lambda sts: ("delivered", ""), 500.0)
    assert await journal.message_state(DEV, 1) == "unknown"


async def test_reads_see_only_committed_rows(journal: Journal) -> None:
    """The report loop reads events on its own connection: a row whose transaction has not
    committed (so is not on disk) must be invisible to it. The dispatcher's unawaited "sent"
    write relies on this."""
    inside, release = threading.Event(), threading.Event()

    def slow_insert(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO events (device, channel, event_id, body)"
            " VALUES (?, 'report', 'x:1', '{}')",
            (DEV,),
        )
        inside.set()
        release.wait(10)

    pending = journal.store.write_nowait(slow_insert)
    await asyncio.get_running_loop().run_in_executor(None, inside.wait, 10)
    assert inside.is_set()
    assert await journal.count_pending_events(DEV, "report") == 0  # written, not committed
    release.set()
    await pending
    assert await journal.count_pending_events(DEV, "report") == 1


async def test_lookups_by_state_do_not_walk_the_finished_history(journal: Journal) -> None:
    """Open leases (every pull), overdue sends (the delivery loop) and messages to hand back
    are found through the (device, state, ...) index: their cost must not grow with the
    thousands of finished rows a device keeps for 30 days (SQLite walked the primary key for
    `ORDER BY id`, so each pull read the device's whole history)."""

    def add_history(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO outbox (device, id, slot, to_number, body, state, created, updated)"
            " VALUES (?, ?, 0, '+4915100000000', 'x', 'delivered', 1.0, 1.0)",
            [(DEV, 100_000 + i) for i in range(5000)],
        )

    async def steps(read: Callable[[], Awaitable[object]]) -> int:
        conn = journal.store._rconn
        assert conn is not None
        count = [0]

        def tick() -> int:
            count[0] += 1
            return 0

        conn.set_progress_handler(tick, 100)  # one tick per 100 SQLite VM instructions
        try:
            await read()
        finally:
            conn.set_progress_handler(None, 0)
        return count[0]

    await commit_all(journal, [1, 2])
    await journal.add_leased(DEV, "L2", [lm(3)], 100.0)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: journal.open_leases(DEV),
        lambda: journal.releasing(DEV, 100),
    ]
    before = [await steps(r) for r in reads]
    await journal.store.write(add_history)
    after = [await steps(r) for r in reads]
    assert await journal.open_leases(DEV) == {"L2": [3]}
    assert [a - b for a, b in zip(after, before, strict=True)] == [0, 0], (before, after)
    wconn = journal.store._wconn
    assert wconn is not None
    ticks = [0]

    def tick() -> int:
        ticks[0] += 1
        return 0

    wconn.set_progress_handler(tick, 100)
    assert await journal.expire_unreported(DEV, 50.0, 60.0, "why") == []
    wconn.set_progress_handler(None, 0)
    assert ticks[0] < 5  # walking 5,000 rows takes hundreds of ticks


async def test_reads_let_other_tasks_run_every_few_reads_not_after_each(journal: Journal) -> None:
    """A loop that only reads still lets the event loop run others every few reads, but a read
    is not a yield of its own: that was a task step per read (about five per SMS)."""
    ran = 0

    def tick() -> None:
        nonlocal ran
        ran += 1

    async def reads_until_others_ran() -> int:
        nonlocal ran
        ran = 0
        asyncio.get_running_loop().call_soon(tick)
        reads = 0
        while not ran and reads < 100:
            await journal.backlog("dev")
            reads += 1
        return reads

    await reads_until_others_ran()  # from a yield on: the next stretch is a whole one
    stretches = [await reads_until_others_ran() for _ in range(5)]
    assert all(1 < n <= 16 for n in stretches), stretches
