"""What only the SQLite store has: WAL with full sync, the group-commit writer, AUTOINCREMENT ids
and the JSON batch insert with its NUL fallback. The engine-neutral half is test_contract.py."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from simhive.server.core.models import MessageFilter, NewMessage
from simhive.server.core.pools import SimOffer
from simhive.server.store.sqlite import SqliteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db.sqlite3")
    await s.open()
    yield s
    await s.close()


async def _owner(store: SqliteStore) -> tuple[int, int]:
    account = await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    device = await store.create_device(account.id, "dev", "d1", 1)
    return account.id, device.id


async def test_wal_and_full_sync_on_the_writer(store: SqliteStore) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[str, int]:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        return mode, sync

    assert await store.writer.submit(pragmas) == ("wal", 2)  # 2 = FULL


async def test_group_commit_many_requests_few_transactions(store: SqliteStore) -> None:
    account_id, device_id = await _owner(store)
    before = store.writer.stats.transactions
    n = 300
    results = await asyncio.gather(
        *(
            store.insert_messages([NewMessage(account_id, device_id, "+4915752982212", f"m{i}")], i)
            for i in range(n)
        )
    )
    transactions = store.writer.stats.transactions - before
    assert sorted(r[0] for r in results) == list(range(1, n + 1))
    # concurrent requests shared commits: far fewer transactions (fsyncs) than requests
    assert transactions < n / 2, transactions
    assert store.writer.stats.largest_batch > 1
    assert await store.count_messages(MessageFilter(account_id)) == n


async def test_a_failing_op_does_not_sink_its_batch(store: SqliteStore) -> None:
    account_id, device_id = await _owner(store)

    def boom(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO tags(account_id, title, created) VALUES (?, 'half', 0)",
                     (account_id,))  # fmt: skip
        raise RuntimeError("op failed")

    good = [
        store.insert_messages([NewMessage(account_id, device_id, "+4915752982212", "x")], 0)
        for _ in range(20)
    ]
    results = await asyncio.gather(store.writer.submit(boom), *good, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert all(isinstance(r, list) for r in results[1:])
    assert await store.count_messages(MessageFilter(account_id)) == 20
    assert await store.existing_tags(account_id, [1]) == set()  # the failed op rolled back alone


async def test_a_failed_batch_leaves_no_gap_in_the_ids(store: SqliteStore) -> None:
    # AUTOINCREMENT's counter rolls back with the failed insert (PostgreSQL's sequence does not).
    account_id, device_id = await _owner(store)
    batch = [NewMessage(account_id, device_id, "+4915752982212", "ok")] * 5
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert_messages([*batch, NewMessage(account_id, 999, "+49157", "bad")], 0)
    assert await store.insert_messages(batch, 0) == [1, 2, 3, 4, 5]


async def test_ack_means_on_disk(store: SqliteStore) -> None:
    # An acknowledged write is visible to a brand-new connection (it is in the WAL on disk).
    account_id, device_id = await _owner(store)
    [sms_id] = await store.insert_messages(
        [NewMessage(account_id, device_id, "+4915752982212", "durable")], 0
    )
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT body FROM messages WHERE id = ?", (sms_id,)).fetchone() == (
        "durable",
    )
    conn.close()


async def test_text_with_nul_takes_the_executemany_path(store: SqliteStore) -> None:
    # Batches go in as one JSON statement; text with NUL falls back to executemany, which
    # stores it whole.
    account_id, device_id = await _owner(store)
    ids = await store.insert_messages(
        [NewMessage(account_id, device_id, "+4915752982212", b) for b in ("a", "nul\x00inside")],
        5,
    )
    got = {m.id: m.body for m in await store.list_messages(MessageFilter(account_id))}
    assert [got[i] for i in ids] == ["a", "nul\x00inside"]


async def test_the_pull_check_does_not_walk_the_pool_queue(store: SqliteStore) -> None:
    """A pull's "is anything due" read costs the same with 40 or 2,000 pool messages waiting:
    the queue is read through its partial index, and not at all by a SIM without pool room
    (SQLite's planner, without statistics, walked the whole queue through messages_pull)."""
    account_id, device_id = await _owner(store)
    pool = await store.implicit_pool(account_id, None, 1)
    pooled, full = [SimOffer(0, True, 5, 5)], [SimOffer(0, True, 5, 0)]
    await store.offer_sims(device_id, pooled, 1)
    assert store._reader is not None and store._inline is not None
    ticks = 0

    def tick() -> int:
        nonlocal ticks
        ticks += 1
        return 0

    # Called every 50 VM instructions, on both read connections (the check's own and the thread's).
    await store._reader.set_progress_handler(tick, 50)
    store._inline.set_progress_handler(tick, 50)

    async def cost(offers: list[SimOffer]) -> tuple[int, tuple[bool, int | None]]:
        nonlocal ticks
        ticks = 0
        answer = await store.due_state_sims(device_id, account_id, offers, 10)
        return ticks, answer

    async def queue(n: int) -> None:
        await store.insert_messages(
            [NewMessage(account_id, None, "+4915752982212", f"p{i}", pool_id=pool.id)
             for i in range(n)], 1,
        )  # fmt: skip

    await queue(40)
    small = [await cost(pooled), await cost(full)]
    await queue(1960)
    large = [await cost(pooled), await cost(full)]
    assert [a for _, a in small] == [a for _, a in large] == [(True, None), (False, None)]
    for (few, _), (many, _) in zip(small, large, strict=True):
        assert many <= few + 2, (small, large)


def _pull_check_cost(
    store: SqliteStore, device_id: int, account_id: int, offers: list[SimOffer]
) -> Callable[[], Awaitable[tuple[int, tuple[bool, int | None]]]]:
    """A pull check of the device, counted in SQLite VM steps (ticks of 50 instructions) on the
    loop's inline read connection, where the check runs."""
    assert store._inline is not None
    ticks = 0

    def tick() -> int:
        nonlocal ticks
        ticks += 1
        return 0

    store._inline.set_progress_handler(tick, 50)

    async def cost() -> tuple[int, tuple[bool, int | None]]:
        nonlocal ticks
        ticks = 0
        answer = await store.due_state_sims(device_id, account_id, offers, 10)
        return ticks, answer

    return cost


async def test_the_pull_check_seeks_past_scheduled_messages(store: SqliteStore) -> None:
    """With nothing due, a pull check costs the same with 40 or 4,000 scheduled messages
    waiting, pinned to the SIM and in its pool: it seeks on the due time in both queue indexes
    (which hold `urgent` before `due`) instead of walking every waiting message."""
    account_id, device_id = await _owner(store)
    pool = await store.implicit_pool(account_id, None, 1)
    offers = [SimOffer(0, True, 5, 5)]
    await store.offer_sims(device_id, offers, 1)
    cost = _pull_check_cost(store, device_id, account_id, offers)

    async def schedule(n: int, first: int) -> None:
        to = "+4915752982212"
        await store.insert_messages(
            [NewMessage(account_id, None, to, f"p{i}", pool_id=pool.id, timetosend=first + i)
             for i in range(n)]
            + [NewMessage(account_id, device_id, to, f"d{i}", timetosend=first + i,
                          urgent=i % 7 == 0) for i in range(n)],
            1,
        )  # fmt: skip

    await schedule(40, 1_000)
    few, answer = await cost()
    assert answer == (False, 1_000)
    await schedule(1_960, 2_000)
    many, answer = await cost()
    assert answer == (False, 1_000)
    assert many <= few + 2, (few, many)


async def test_the_pull_check_reads_only_its_own_leases(store: SqliteStore) -> None:
    """With nothing due, a pull check costs the same with 40 or 4,000 messages leased to other
    devices and 10 or 2,000 of its own scheduled: "when does this device's next lease expire"
    seeks to the device's own leased messages (messages_device_leases) instead of walking every
    device's through messages_lease_expiry."""
    account_id, device_id = await _owner(store)
    offers = [SimOffer(0, True, 5, 5)]
    await store.offer_sims(device_id, offers, 1)
    to = "+4915752982212"
    await store.insert_messages([NewMessage(account_id, device_id, to, "now")], 1)
    await store.lease_due(device_id, 10, "mine", 2, 9_000)  # expires after all the others'
    cost = _pull_check_cost(store, device_id, account_id, offers)

    async def schedule(n: int) -> None:
        await store.insert_messages(
            [NewMessage(account_id, device_id, to, f"s{i}", timetosend=20_000 + i)
             for i in range(n)], 1,
        )  # fmt: skip

    async def lease_elsewhere(devices: int, each: int) -> None:
        for _ in range(devices):
            other = await store.create_device(account_id, "o", f"t{uuid.uuid4().hex}", 1)
            await store.insert_messages(
                [NewMessage(account_id, other.id, to, f"o{i}") for i in range(each)], 1
            )
            lease = await store.lease_due(other.id, each, uuid.uuid4().hex, 2, 5_000)
            assert len(lease.messages) == each

    await schedule(10)
    await lease_elsewhere(2, 20)
    few, answer = await cost()
    assert answer == (False, 9_000)
    await schedule(1_990)
    await lease_elsewhere(40, 99)
    many, answer = await cost()
    assert answer == (False, 9_000)
    assert many <= few + 2, (few, many)


async def test_the_agent_path_reads_on_the_event_loop_thread(store: SqliteStore) -> None:
    """The token look-up and a pull's "is anything due" run on the loop's own connection: no
    hop to the reader thread (whose hand-over cost several times the read)."""
    import threading

    account_id, device_id = await _owner(store)
    pool = await store.implicit_pool(account_id, None, 1)
    offers = [SimOffer(0, True, 5, 5)]
    await store.offer_sims(device_id, offers, 1)

    async def queue(n: int) -> None:
        to = "+4915752982212"
        await store.insert_messages(
            [NewMessage(account_id, None, to, f"p{i}", pool_id=pool.id) for i in range(n)]
            + [NewMessage(account_id, device_id, to, "x")],
            1,
        )

    await queue(40)
    assert store._reader is not None and store._inline is not None
    on_reader: list[str] = []
    on_loop: list[int] = []
    await store._reader.set_trace_callback(on_reader.append)
    store._inline.set_trace_callback(lambda _sql: on_loop.append(threading.get_ident()))

    device = await store.device_by_token_hash("d1")
    assert device is not None and device.id == device_id
    assert await store.due_state_sims(device_id, account_id, offers, 10) == (True, None)
    assert await store.due_state(device_id, 10) == (True, None)
    # Nothing due yet: the answer says when to look again.
    assert await store.due_state_sims(device_id, account_id, offers, 0) == (False, 1)
    assert on_reader == []
    assert on_loop == [threading.get_ident()] * 4


async def test_a_busy_inline_read_goes_to_the_reader_thread(store: SqliteStore) -> None:
    """SQLite may answer busy to a reader (a checkpoint or recovery holding the read lock): the
    loop does not wait for it, the reader thread (with its busy timeout) reads instead."""
    account_id, device_id = await _owner(store)

    class Busy:
        def execute(self, *_args: object) -> sqlite3.Cursor:
            raise sqlite3.OperationalError("database is locked")

    inline, store._inline = store._inline, Busy()  # type: ignore[assignment]
    try:
        device = await store.device_by_token_hash("d1")
        assert device is not None and device.id == device_id
        assert await store.due_state(device_id, 10) == (False, None)
    finally:
        store._inline = inline


async def test_a_group_transaction_stamps_lastseen_with_one_statement(store: SqliteStore) -> None:
    """Agent calls that share a group transaction write their devices' `lastseen` with one
    UPDATE before its COMMIT, not one each; the latest stamp of a device wins."""
    account_id, first = await _owner(store)
    devices = [first] + [
        (await store.create_device(account_id, f"d{i}", f"t{i}", 1)).id for i in range(5)
    ]
    stamping: list[str] = []

    def trace(sql: str) -> None:
        if sql.startswith("UPDATE devices SET lastseen"):
            stamping.append(sql)

    await store.writer.submit(lambda conn: conn.set_trace_callback(trace))
    before = store.writer.stats.transactions
    await asyncio.gather(
        *(store.commit_lease(d, "none", [], 100 + i) for i, d in enumerate(devices)),
        store.touch_device(first, 200),
    )
    transactions = store.writer.stats.transactions - before
    assert transactions < len(devices)
    assert len(stamping) == transactions
    seen = {d.id: d.lastseen for d in await store.list_devices(account_id)}
    assert seen == {first: 200, **{d: 100 + i for i, d in enumerate(devices) if i}}
