"""The group-commit writer's failure semantics, with and without a per-op savepoint.

An op that may write with several statements runs under its own SAVEPOINT; an op that writes
with one statement (`atomic=True`, e.g. an agent's commit) runs without, because SQLite undoes a
failed statement by itself. Either way a failing op must fail alone: its caller gets its
exception, nothing of it stays, the other ops of its group transaction commit; and an error after
which SQLite rolled the whole transaction back fails the whole batch. The savepoints are observed
with the writer connection's trace callback. The engine-neutral half of the commit case is
test_agent_contract.py's test_a_refused_commit_fails_alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from simhive.server.core.models import NewMessage
from simhive.server.core.status import Status
from simhive.server.store.base import StoreError
from simhive.server.store.sqlite import SqliteStore
from tests.support.writer import in_one_batch

T0 = 1_000_000_000
NUMBER = "+4915752982212"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db.sqlite3")
    await s.open()
    await s.writer.submit(
        lambda conn: conn.execute("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE)")
    )
    yield s
    await s.close()


async def _trace(store: SqliteStore) -> list[str]:
    """Every statement the writer connection runs from now on (a trigger's start repeats its
    statement's text; the tests only look for the transaction-control statements)."""
    statements: list[str] = []
    await store.writer.submit(lambda conn: conn.set_trace_callback(statements.append))
    return statements


def _rows(store: SqliteStore, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store.path) as conn:
        return [tuple(r) for r in conn.execute(sql)]


def _insert(*values: str) -> Callable[[sqlite3.Connection], None]:
    """An op writing each value with its own statement."""

    def op(conn: sqlite3.Connection) -> None:
        for value in values:
            conn.execute("INSERT INTO w(v) VALUES (?)", (value,))

    return op


async def test_a_refused_commit_fails_alone_without_a_savepoint(store: SqliteStore) -> None:
    """An agent's commit is one UPDATE: it runs without a savepoint, and when that statement fails
    (here a trigger refuses one device's message: a constraint error) only its caller fails."""
    account = await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    devices = [(await store.create_device(account.id, f"d{i}", f"t{i}", 1)).id for i in range(4)]
    leases = []
    for device_id in devices:
        await store.insert_messages([NewMessage(account.id, device_id, NUMBER, "x")], T0)
        leases.append(await store.lease_due(device_id, 1, f"L{device_id}", T0, T0 + 100))
    refused = leases[2].messages[0].id
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE OF status ON messages"
            f" WHEN old.id = {refused} AND new.status = 3 BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    statements = await _trace(store)
    before = store.writer.stats.transactions
    results = await in_one_batch(
        store,
        [
            store.commit_lease(d, lease.lease_id, [m.id for m in lease.messages], T0 + 1)
            for d, lease in zip(devices, leases, strict=True)
        ],
    )
    assert store.writer.stats.transactions - before == 2  # the gate's, then all four commits
    assert isinstance(results[2], sqlite3.IntegrityError) and "refused" in str(results[2])
    for i in (0, 1, 3):
        assert results[i] == ([leases[i].messages[0].id], [])
    status = dict(_rows(store, "SELECT id, status FROM messages"))
    assert status == {
        m.id: Status.TAKEN if m.id == refused else Status.QUEUED
        for lease in leases
        for m in lease.messages
    }
    # the history trigger's row of the refused UPDATE went with it
    assert _rows(store, f"SELECT status FROM message_history WHERE sms_id = {refused}") == [
        (Status.TAKEN,)
    ]
    assert not [s for s in statements if s.startswith(("SAVEPOINT", "ROLLBACK", "RELEASE"))]


async def test_a_multi_statement_op_still_rolls_back_as_a_unit(store: SqliteStore) -> None:
    """An op whose second statement fails keeps nothing of its first: it ran under a savepoint
    (SQLite's statement rollback would undo only the failed statement)."""
    await store.writer.submit(_insert("taken"))
    statements = await _trace(store)
    results = await in_one_batch(
        store,
        [
            store.writer.submit(_insert("before")),
            store.writer.submit(_insert("half", "taken")),  # UNIQUE fails on the second
            store.writer.submit(_insert("one"), atomic=True),
            store.writer.submit(_insert("after")),
        ],
    )
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert [results[i] for i in (0, 2, 3)] == [None, None, None]
    assert {v for (v,) in _rows(store, "SELECT v FROM w")} == {"taken", "before", "one", "after"}
    control = [s for s in statements if s.startswith(("SAVEPOINT", "ROLLBACK", "RELEASE"))]
    # three savepoints for the three ops that may write twice, the atomic one has none
    assert control == [
        *("SAVEPOINT op", "RELEASE op"),
        *("SAVEPOINT op", "ROLLBACK TO op", "RELEASE op"),
        *("SAVEPOINT op", "RELEASE op"),
    ]


async def test_an_atomic_op_failing_after_its_write_fails_its_batch(store: SqliteStore) -> None:
    """An op that broke its atomic promise (it failed after a statement of it had written) cannot
    be undone alone: the whole batch fails rather than commit half an op its caller saw fail."""

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO w(v) VALUES ('written')")
        raise RuntimeError("failed after writing")

    results = await in_one_batch(
        store,
        [
            store.writer.submit(_insert("other")),
            store.writer.submit(broken, atomic=True),
            store.writer.submit(_insert("also"), atomic=True),
        ],
    )
    assert all(isinstance(r, StoreError) for r in results), results
    assert "failed after writing" in str(results[1])
    assert _rows(store, "SELECT v FROM w") == []
    await store.writer.submit(_insert("next"))  # the writer goes on
    assert _rows(store, "SELECT v FROM w") == [("next",)]


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "savepoint"])
async def test_a_full_database_fails_the_whole_batch(store: SqliteStore, atomic: bool) -> None:
    """SQLITE_FULL may roll the whole transaction back (it does for a database at its
    max_page_count): then nothing of the batch is written, and every op's caller gets a
    StoreError, whether the failing op ran under a savepoint (whose ROLLBACK TO then fails) or
    not (the writer sees the transaction gone)."""

    def cap(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")

    await store.writer.submit(cap)
    results = await in_one_batch(
        store,
        [
            store.writer.submit(_insert("small")),
            store.writer.submit(_insert("x" * 200_000), atomic=atomic),
            store.writer.submit(_insert("after"), atomic=True),
        ],
    )
    assert all(isinstance(r, StoreError) for r in results), results
    # (under a savepoint the error the batch fails with is its ROLLBACK TO's "no such savepoint")
    assert "full" in str(results[1]) if atomic else "savepoint" in str(results[1])
    await store.writer.submit(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
    await store.writer.submit(_insert("next"))
    assert _rows(store, "SELECT v FROM w") == [("next",)]
