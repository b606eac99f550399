"""Merged one-row inserts in the group-commit writer (writer.RowInsert).

The writer thread is held on a gate so that the inserts under test queue up and form one batch,
as they do under load; then every request must get the id of its own row, and a bad row must fail
only its own request.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from simhive.server.core.models import MessageFilter, NewMessage
from simhive.server.store.sqlite import SqliteStore
from simhive.server.store.writer import MERGE_ROWS
from tests.support.writer import in_one_batch


async def owner(store: SqliteStore) -> tuple[int, int]:
    account = await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    device = await store.create_device(account.id, "dev", "d1", 1)
    return account.id, device.id


def bodies(store: SqliteStore) -> dict[int, str]:
    with sqlite3.connect(store.path) as conn:
        return {int(i): str(b) for i, b in conn.execute("SELECT id, body FROM messages")}


def one(account_id: int, device_id: int, body: str) -> NewMessage:
    return NewMessage(account_id, device_id, "+4915752982212", body)


@pytest.mark.parametrize("n", [2, MERGE_ROWS, MERGE_ROWS * 2 + 3])
async def test_each_request_gets_its_own_row_id(store: SqliteStore, n: int) -> None:
    account_id, device_id = await owner(store)
    before = store.writer.stats.transactions
    results = await in_one_batch(
        store, [store.insert_messages([one(account_id, device_id, f"m{i}")], 0) for i in range(n)]
    )
    stored = bodies(store)
    assert [stored[r[0]] for r in results] == [f"m{i}" for i in range(n)]
    assert len(stored) == n
    # the held op's batch, then one for all the inserts
    assert store.writer.stats.transactions - before == 2


def noop(conn: sqlite3.Connection) -> str:
    return "done"


@pytest.mark.parametrize("bad_at", [0, 3, 6])
@pytest.mark.parametrize("alone", [True, False], ids=["inserts-only", "after-another-op"])
@pytest.mark.parametrize(
    ("kind", "error"),
    [("foreign-key", sqlite3.IntegrityError), ("unencodable", UnicodeEncodeError)],
)
async def test_a_bad_row_fails_alone(
    store: SqliteStore, bad_at: int, alone: bool, kind: str, error: type[Exception]
) -> None:
    # inserts-only: the batch is tried as one autocommit statement first; after-another-op: the
    # inserts merge inside the batch's transaction. Both retry row by row after a failure.
    # foreign-key: device 999 does not exist. unencodable: a lone surrogate, which Python's
    # sqlite3 cannot bind as UTF-8 (a ValueError, not an sqlite3.Error); the API layer never
    # lets one through, but a row that slips past it must still fail only its own request.
    account_id, device_id = await owner(store)
    calls: list[Awaitable[Any]] = [] if alone else [store.writer.submit(noop)]
    for i in range(7):
        device = 999 if i == bad_at and kind == "foreign-key" else device_id
        body = "m\ud800" if i == bad_at and kind == "unencodable" else f"m{i}"
        calls.append(store.insert_messages([one(account_id, device, body)], 0))
    results = await in_one_batch(store, calls)
    if not alone:
        assert results.pop(0) == "done"
    assert isinstance(results[bad_at], error), results
    stored = bodies(store)
    good = [r for i, r in enumerate(results) if i != bad_at]
    assert [stored[r[0]] for r in good] == [f"m{i}" for i in range(7) if i != bad_at]
    assert len(stored) == 6


async def test_merged_inserts_between_other_ops(store: SqliteStore) -> None:
    account_id, device_id = await owner(store)

    def tag(conn: sqlite3.Connection) -> int:
        cur = conn.execute(
            "INSERT INTO tags(account_id, title, created) VALUES (?, 't', 0)", (account_id,)
        )
        return int(cur.lastrowid or 0)

    calls: list[Awaitable[Any]] = [
        store.insert_messages([one(account_id, device_id, "a")], 0),
        store.insert_messages([one(account_id, device_id, "b")], 0),
        store.writer.submit(tag),
        store.insert_messages([one(account_id, device_id, "c")], 0),
        store.insert_messages(
            [one(account_id, device_id, "d"), one(account_id, device_id, "e")], 0
        ),  # fmt: skip
        store.insert_messages([one(account_id, device_id, "f")], 0),
    ]
    results = await in_one_batch(store, calls)
    stored = bodies(store)
    assert [stored[results[i][0]] for i in (0, 1, 3, 5)] == ["a", "b", "c", "f"]
    assert [stored[i] for i in results[4]] == ["d", "e"]
    assert results[2] == 1
    assert await store.count_messages(MessageFilter(account_id)) == 6


async def test_ops_arriving_pass_after_pass_join_one_batch(store: SqliteStore) -> None:
    # Under concurrent load (the last batch had more than one op) the writer waits while each
    # event-loop pass brings new ops, so a trickle of requests shares one commit.
    account_id, device_id = await owner(store)
    await asyncio.gather(*(store.insert_messages([one(account_id, device_id, "w")], 0)
                           for _ in range(2)))  # fmt: skip
    before = store.writer.stats.transactions

    async def after(passes: int) -> list[int]:
        for _ in range(passes):
            await asyncio.sleep(0)
        return await store.insert_messages([one(account_id, device_id, f"p{passes}")], 0)

    results = await asyncio.gather(*(after(k) for k in range(6)))
    assert store.writer.stats.transactions - before == 1
    stored = bodies(store)
    assert [stored[r[0]] for r in results] == [f"p{k}" for k in range(6)]


async def test_a_locked_database_fails_the_batch_once(tmp_path: Path) -> None:
    # Busy past busy_timeout is nothing row-specific: the merged statement's failure fails the
    # batch (StoreError, HTTP 503) without a second wait for the lock in a row-by-row retry.
    from simhive.server.store.base import StoreError

    store = SqliteStore(tmp_path / "db.sqlite3", busy_timeout_ms=100)
    await store.open()
    try:
        account_id, device_id = await owner(store)
        statements: list[str] = []

        def trace(conn: sqlite3.Connection) -> None:
            conn.set_trace_callback(statements.append)

        await store.writer.submit(trace)
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            statements.clear()
            # submitted in one loop pass, so they form one batch (a gate op would need the lock)
            results = await asyncio.gather(
                *(store.insert_messages([one(account_id, device_id, f"m{i}")], 0)
                  for i in range(3)),
                return_exceptions=True,
            )  # fmt: skip
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert all(isinstance(r, StoreError) for r in results), results
        inserts = [s for s in statements if s.startswith("INSERT INTO messages")]
        assert len(inserts) == 1 and not any(s.startswith("BEGIN") for s in statements)
        [[sms_id]] = [await store.insert_messages([one(account_id, device_id, "after")], 0)]
        assert bodies(store) == {sms_id: "after"}
    finally:
        await store.close()
