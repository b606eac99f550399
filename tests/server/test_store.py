"""The SQLite store: migrations, durability settings, group commit, atomic batches."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from simhive.server.core.models import MessageFilter, NewMessage
from simhive.server.store.base import DuplicateEmail
from simhive.server.store.sqlite import SqliteStore
from simhive.server.store.sqlite_schema import LATEST_VERSION


async def _owner(store: SqliteStore) -> tuple[int, int]:
    account = await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    device = await store.create_device(account.id, "dev", "d1", 1)
    return account.id, device.id


async def test_migrations_are_versioned_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    for _ in range(2):
        s = SqliteStore(path)
        await s.open()
        await s.close()
    conn = sqlite3.connect(path)
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == list(range(1, LATEST_VERSION + 1))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"messages", "message_parts", "applied_events", "incoming_keys", "sims"} <= tables
    columns = {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
    assert {
        "status", "sim", "urgent", "timetosend", "lease_id", "lease_expires", "attempt",
        "senttime", "delivered_time", "failure_code", "failure_reason", "paket_id",
    } <= columns  # fmt: skip
    conn.close()


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


async def test_insert_messages_is_all_or_nothing(store: SqliteStore) -> None:
    account_id, device_id = await _owner(store)
    batch = [NewMessage(account_id, device_id, "+4915752982212", "ok")] * 5
    batch.append(NewMessage(account_id, 999, "+4915752982212", "bad device"))  # FK violation
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert_messages(batch, 0)
    assert await store.count_messages(MessageFilter(account_id)) == 0
    ids = await store.insert_messages(batch[:5], 0)
    assert ids == [1, 2, 3, 4, 5]


async def test_duplicate_email(store: SqliteStore) -> None:
    await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    with pytest.raises(DuplicateEmail):
        await store.create_account("A@Example.com", "x", "h2", "UTC", 1)


async def test_account_tokens_are_capped(store: SqliteStore) -> None:
    account = await store.create_account("a@example.com", "x", "t0", "UTC", 1)
    for i in range(1, 6):
        await store.add_account_token(account.id, f"t{i}", i, keep=3)
    found = [await store.account_by_token_hash(f"t{i}") is not None for i in range(6)]
    assert found == [False, False, False, True, True, True]
    await store.add_account_token(account.id, "fresh", 9, keep=3, revoke_others=True)
    assert await store.account_by_token_hash("t5") is None
    assert await store.account_by_token_hash("fresh") is not None


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


async def test_batch_insert_paths_store_the_same(store: SqliteStore) -> None:
    # Batches go in as one JSON statement; text with NUL falls back to executemany. Both must
    # store every field exactly, in input order.
    account_id, device_id = await _owner(store)
    batch = [
        NewMessage(account_id, device_id, "+4915752982212", "plain", 0, False, None, None),
        NewMessage(
            account_id,
            device_id,
            "015752982212",
            'ünï "quoted" \\ 😀',
            1,
            True,
            2**62,
            1_700_000_000_000_000,
        ),  # fmt: skip
        NewMessage(account_id, device_id, "+4915752982212", "tab\there\nnewline", 0, False, 0),
    ]
    with_nul = [*batch, NewMessage(account_id, device_id, "+4915752982212", "nul\x00inside")]
    json_ids = await store.insert_messages(batch, 5)
    plain_ids = await store.insert_messages(with_nul, 5)
    got = await store.list_messages(MessageFilter(account_id))
    by_id = {m.id: m for m in got}

    def fields(sms_id: int) -> tuple[object, ...]:
        m = by_id[sms_id]
        return (m.sendto, m.body, m.sim, m.urgent, m.customerid, m.timetosend, m.status)

    assert [fields(i) for i in json_ids] == [fields(i) for i in plain_ids[:3]]
    assert fields(json_ids[1]) == ("015752982212", 'ünï "quoted" \\ 😀', 1, True, 2**62,
                                   1_700_000_000_000_000, 1)  # fmt: skip
    assert by_id[plain_ids[3]].body == "nul\x00inside"
    assert json_ids == sorted(json_ids) and plain_ids == sorted(plain_ids)


async def test_unfiltered_count_matches_the_table(store: SqliteStore) -> None:
    from simhive.server.core.models import IncomingMessage, NewPaket

    account_id, device_id = await _owner(store)
    other = await store.create_account("b@example.com", "x", "h2", "UTC", 1)
    other_device = await store.create_device(other.id, "dev", "d2", 1)
    assert await store.count_messages(MessageFilter(account_id)) == 0
    one = NewMessage(account_id, device_id, "+4915752982212", "x")
    await store.insert_messages([one], 1)
    await store.insert_messages([one] * 7, 1)
    await store.insert_messages([NewMessage(other.id, other_device.id, "+4915752982212", "y")], 1)
    tag = await store.create_tag(account_id, "t", 1)
    for phone in ("+4915752982212", "+4917642111111"):
        await store.create_contact(account_id, tag, phone, None, 1)
    await store.create_paket(NewPaket(account_id, device_id, "p", "b", 0, (tag,)), 1)
    await store.store_incoming(account_id, device_id, [IncomingMessage("k", 0, "+49170", "hi")], 1)
    conn = sqlite3.connect(store.path)
    real = conn.execute("SELECT COUNT(*) FROM messages WHERE account_id = ?", (account_id,))
    expected = real.fetchone()[0]
    conn.close()
    assert expected == 1 + 7 + 2 + 1
    assert await store.count_messages(MessageFilter(account_id)) == expected
    assert await store.count_messages(MessageFilter(other.id)) == 1
    # a filtered count still counts rows
    assert await store.count_messages(MessageFilter(account_id, status=5)) == 1


async def test_atomic_ops_in_a_batch_fail_alone(store: SqliteStore) -> None:
    # Single-statement ops skip the savepoint: a failing one (here a foreign-key violation) is
    # undone by SQLite alone and the rest of the group commit still lands.
    account_id, device_id = await _owner(store)
    good = NewMessage(account_id, device_id, "+4915752982212", "ok")
    bad = NewMessage(account_id, 999, "+4915752982212", "no such device")
    results = await asyncio.gather(
        *(store.insert_messages([bad if i % 5 == 2 else good], 0) for i in range(40)),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 8 and all(isinstance(r, sqlite3.IntegrityError) for r in failed)
    assert await store.count_messages(MessageFilter(account_id)) == 32
    assert await store.count_messages(MessageFilter(account_id, device_id=device_id)) == 32
