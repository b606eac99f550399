"""The store contract, run against SQLite and PostgreSQL alike (conftest's `engine` parameter):
migrations, accounts and tokens, atomic and concurrent inserts, counts. What only SQLite has
(WAL, the group-commit writer) is in test_sqlite.py."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import asyncpg
import pytest

from simhive.server.core.models import IncomingMessage, MessageFilter, NewMessage, NewPaket
from simhive.server.store import pg_schema, sqlite_schema
from simhive.server.store.base import AfterInsert, DuplicateEmail, Store
from tests.store.conftest import Raw

# What a foreign-key violation raises, per engine (the store lets it through: a caller bug).
INTEGRITY = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


async def _owner(store: Store) -> tuple[int, int]:
    account = await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    device = await store.create_device(account.id, "dev", "d1", 1)
    return account.id, device.id


async def _columns(raw: Raw, engine: str, table: str) -> set[str]:
    if engine == "sqlite":
        return {str(r[1]) for r in await raw.rows(f"PRAGMA table_info({table})")}
    rows = await raw.rows(
        "SELECT column_name FROM information_schema.columns WHERE table_schema ="
        f" current_schema() AND table_name = '{table}'"
    )
    return {str(r[0]) for r in rows}


async def _tables(raw: Raw, engine: str) -> set[str]:
    if engine == "sqlite":
        rows = await raw.rows("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows} - {"sqlite_sequence"}
    rows = await raw.rows("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    return {str(r[0]) for r in rows}


def test_both_engines_have_the_same_migrations() -> None:
    # A new SQLite migration needs its PostgreSQL twin (pg_schema.py): same number and words.
    assert [(v, d) for v, d, _ in pg_schema.MIGRATIONS] == [
        (v, d) for v, d, _ in sqlite_schema.MIGRATIONS
    ]


@pytest.mark.fresh_schema  # the first open() migrates an empty schema
async def test_migrations_are_versioned_and_idempotent(
    make_store: Any, engine: str, schema: str, request: pytest.FixtureRequest
) -> None:
    for _ in range(2):
        s: Store = make_store()
        await s.open()
        await s.close()
    raw = Raw(s, request.getfixturevalue("pg_url") if engine == "postgresql" else "", schema)
    versions = [r[0] for r in await raw.rows("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == list(range(1, sqlite_schema.LATEST_VERSION + 1))
    tables = await _tables(raw, engine)
    assert {"messages", "message_parts", "applied_events", "incoming_keys", "sims"} <= tables
    assert {
        "status", "sim", "urgent", "timetosend", "lease_id", "lease_expires", "attempt",
        "senttime", "delivered_time", "failure_code", "failure_reason", "paket_id",
    } <= await _columns(raw, engine, "messages")  # fmt: skip


async def test_both_engines_build_the_same_tables_and_columns(
    store: Store, raw: Raw, engine: str, tmp_path: Any
) -> None:
    # `db copy` moves rows by column name: every table must have the same columns on both.
    reference = sqlite3.connect(tmp_path / "reference.sqlite3")
    sqlite_schema.migrate(reference)
    expected = {
        str(t): {str(c[1]) for c in reference.execute(f"PRAGMA table_info({t})")}
        for (t,) in reference.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if t != "sqlite_sequence"
    }
    reference.close()
    tables = await _tables(raw, engine)
    assert tables == set(expected)
    for table, columns in expected.items():
        assert await _columns(raw, engine, table) == columns, table


def _follow_up(engine: str, seen: list[list[int]], fail: bool) -> AfterInsert:
    """An insert follow-up of the engine's kind: marks the first message, then maybe fails."""

    def sqlite_step(conn: sqlite3.Connection, ids: list[int]) -> None:
        conn.execute("UPDATE messages SET customerid = 7 WHERE id = ?", (ids[0],))
        seen.append(ids)
        if fail:
            raise RuntimeError("the follow-up failed")

    async def pg_step(conn: asyncpg.Connection, ids: list[int]) -> None:
        await conn.execute("UPDATE messages SET customerid = 7 WHERE id = $1", ids[0])
        seen.append(ids)
        if fail:
            raise RuntimeError("the follow-up failed")

    return sqlite_step if engine == "sqlite" else pg_step


async def test_an_insert_follow_up_shares_its_transaction(
    store: Store, raw: Raw, engine: str
) -> None:
    account_id, device_id = await _owner(store)
    one = NewMessage(account_id, device_id, "+4915752982212", "x")
    seen: list[list[int]] = []
    ids = await store.insert_messages([one], 1, _follow_up(engine, seen, fail=False))
    assert seen == [ids]
    assert await raw.value(f"SELECT customerid FROM messages WHERE id = {ids[0]}") == 7
    # A failing follow-up undoes the insert, also of several messages, and reaches the caller.
    with pytest.raises(RuntimeError, match="follow-up failed"):
        await store.insert_messages([one, one], 1, _follow_up(engine, seen, fail=True))
    assert len(seen) == 2

    # A follow-up of the other engine's kind is refused, and nothing is stored.
    def sync_step(conn: Any, ids: list[int]) -> None:
        seen.append(ids)

    async def async_step(conn: Any, ids: list[int]) -> None:
        seen.append(ids)

    with pytest.raises(TypeError):
        await store.insert_messages([one], 1, async_step if engine == "sqlite" else sync_step)
    assert len(seen) == 2 + (engine != "sqlite")  # the sync one ran before it was refused
    assert await raw.value("SELECT COUNT(*) FROM messages") == 1


async def test_many_concurrent_inserts(store: Store) -> None:
    account_id, device_id = await _owner(store)
    n = 300
    results = await asyncio.gather(
        *(
            store.insert_messages([NewMessage(account_id, device_id, "+4915752982212", f"m{i}")], i)
            for i in range(n)
        )
    )
    ids = [r[0] for r in results]
    assert len(set(ids)) == n
    assert await store.count_messages(MessageFilter(account_id)) == n
    bodies = {m.id: m.body for m in await store.list_messages(MessageFilter(account_id))}
    assert [bodies[i] for i in ids] == [f"m{i}" for i in range(n)]


async def test_insert_messages_is_all_or_nothing(store: Store) -> None:
    account_id, device_id = await _owner(store)
    batch = [NewMessage(account_id, device_id, "+4915752982212", f"ok{i}") for i in range(5)]
    bad = [*batch, NewMessage(account_id, 999, "+4915752982212", "bad device")]  # FK violation
    with pytest.raises(INTEGRITY):
        await store.insert_messages(bad, 0)
    assert await store.count_messages(MessageFilter(account_id)) == 0
    ids = await store.insert_messages(batch, 0)
    assert ids == sorted(ids) and len(set(ids)) == 5
    stored = {m.id: m.body for m in await store.list_messages(MessageFilter(account_id))}
    assert [stored[i] for i in ids] == [f"ok{i}" for i in range(5)]


async def test_duplicate_email(store: Store) -> None:
    await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    with pytest.raises(DuplicateEmail):
        await store.create_account("A@Example.com", "x", "h2", "UTC", 1)
    found = await store.account_by_email("A@EXAMPLE.com")
    assert found is not None and found.email == "a@example.com"


async def test_account_tokens_are_capped(store: Store) -> None:
    account = await store.create_account("a@example.com", "x", "t0", "UTC", 1)
    for i in range(1, 6):
        await store.add_account_token(account.id, f"t{i}", i, keep=3)
    found = [await store.account_by_token_hash(f"t{i}") is not None for i in range(6)]
    assert found == [False, False, False, True, True, True]
    await store.add_account_token(account.id, "fresh", 9, keep=3, revoke_others=True)
    assert await store.account_by_token_hash("t5") is None
    assert await store.account_by_token_hash("fresh") is not None


async def test_update_account_and_devices(store: Store) -> None:
    account_id, device_id = await _owner(store)
    await store.update_account(account_id, timezone="Europe/Berlin")
    account = await store.account_by_id(account_id)
    assert account is not None and account.timezone == "Europe/Berlin"
    assert account.password_hash == "x"
    await store.set_device_token(device_id, "d2")
    await store.set_device_prefix_rules(device_id, [("0", "+49")])
    device = await store.device_by_token_hash("d2")
    assert device is not None and device.id == device_id
    assert device.prefix_rules == (("0", "+49"),)
    assert await store.device_by_token_hash("d1") is None
    await store.touch_device(device_id, 77)
    assert [d.lastseen for d in await store.list_devices(account_id)] == [77]
    assert [a.id for a in await store.list_accounts()] == [account_id]


async def test_ack_means_visible_to_a_new_connection(store: Store, raw: Raw) -> None:
    # An acknowledged write is committed: a brand-new connection sees it.
    account_id, device_id = await _owner(store)
    [sms_id] = await store.insert_messages(
        [NewMessage(account_id, device_id, "+4915752982212", "durable")], 0
    )
    assert await raw.rows(f"SELECT body FROM messages WHERE id = {sms_id}") == [("durable",)]


async def test_batch_insert_paths_store_the_same(store: Store) -> None:
    # SQLite inserts batches as one JSON statement, and text with NUL by executemany; PostgreSQL
    # one unnest statement. Every field must come back exactly, in input order.
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
    json_ids = await store.insert_messages(batch, 5)
    plain_ids = await store.insert_messages([*batch, batch[0]], 5)
    got = await store.list_messages(MessageFilter(account_id))
    by_id = {m.id: m for m in got}

    def fields(sms_id: int) -> tuple[object, ...]:
        m = by_id[sms_id]
        return (m.sendto, m.body, m.sim, m.urgent, m.customerid, m.timetosend, m.status)

    assert [fields(i) for i in json_ids] == [fields(i) for i in plain_ids[:3]]
    assert fields(json_ids[1]) == ("015752982212", 'ünï "quoted" \\ 😀', 1, True, 2**62,
                                   1_700_000_000_000_000, 1)  # fmt: skip
    assert json_ids == sorted(json_ids) and plain_ids == sorted(plain_ids)


async def test_unfiltered_count_matches_the_table(store: Store, raw: Raw) -> None:
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
    expected = await raw.value(f"SELECT COUNT(*) FROM messages WHERE account_id = {account_id}")
    assert expected == 1 + 7 + 2 + 1
    assert await store.count_messages(MessageFilter(account_id)) == expected
    assert await store.count_messages(MessageFilter(other.id)) == 1
    # a filtered count still counts rows
    assert await store.count_messages(MessageFilter(account_id, status=5)) == 1
    # many small inserts: the count stays exact (PostgreSQL folds its counter rows meanwhile)
    for _ in range(100):
        await store.insert_messages([one], 1)
        await store.count_messages(MessageFilter(account_id))
    assert await store.count_messages(MessageFilter(account_id)) == expected + 100


async def test_failing_inserts_among_concurrent_ones_fail_alone(store: Store) -> None:
    # A failing insert (here a foreign-key violation) is undone alone; the others land.
    account_id, device_id = await _owner(store)
    good = NewMessage(account_id, device_id, "+4915752982212", "ok")
    bad = NewMessage(account_id, 999, "+4915752982212", "no such device")
    results = await asyncio.gather(
        *(store.insert_messages([bad if i % 5 == 2 else good], 0) for i in range(40)),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 8 and all(isinstance(r, INTEGRITY) for r in failed)
    assert await store.count_messages(MessageFilter(account_id)) == 32
    assert await store.count_messages(MessageFilter(account_id, device_id=device_id)) == 32


async def test_filters_and_paging(store: Store) -> None:
    account_id, device_id = await _owner(store)
    msgs = [
        NewMessage(account_id, device_id, f"+49157529822{i:02d}", f"m{i}", i % 2, False, i)
        for i in range(10)
    ]
    ids = await store.insert_messages(msgs, 100)
    flt = MessageFilter(account_id, sim=1, descending=True, limit=2, offset=1)
    assert [m.id for m in await store.list_messages(flt)] == [ids[7], ids[5]]
    assert await store.count_messages(MessageFilter(account_id, sim=1)) == 5
    assert [m.id for m in await store.list_messages(MessageFilter(account_id, customerid=3))] == [
        ids[3]
    ]
    by_number = MessageFilter(account_id, sendto="+4915752982204")
    assert [m.body for m in await store.list_messages(by_number)] == ["m4"]
    assert await store.count_messages(MessageFilter(account_id, created_from=101)) == 0
    assert await store.count_messages(MessageFilter(account_id, created_to=100)) == 10
    assert await store.message_by_id(account_id, ids[0]) is not None
    assert await store.message_by_id(account_id + 1, ids[0]) is None


async def test_pakets_expand_distinct_phones_in_contact_order(store: Store) -> None:
    account_id, device_id = await _owner(store)
    t1 = await store.create_tag(account_id, "a", 1)
    t2 = await store.create_tag(account_id, "b", 1)
    assert await store.existing_tags(account_id, [t1, t2, 999]) == {t1, t2}
    for tag, phone in ((t1, "+491"), (t2, "+492"), (t1, "+493"), (t2, "+491")):
        await store.create_contact(account_id, tag, phone, None, 1)
    result = await store.create_paket(NewPaket(account_id, device_id, "p", "body", 0, (t1, t2)), 5)
    sent = [await store.message_by_id(account_id, i) for i in result.message_ids]
    assert [m.sendto for m in sent if m] == ["+491", "+492", "+493"]
    assert all(m is not None and m.paket_title == "p" for m in sent)
