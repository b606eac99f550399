"""Rerunnable ops in the group-commit writer (`submit(op, rerunnable=True)`).

Consecutive rerunnable ops of a batch share one savepoint instead of one each; when one of them
fails, all of them are undone and run again each under its own savepoint, so the outcome is the
one of savepoint per op: the failing op's writes are gone, every other op's stay, once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

from simhive.server.store.sqlite import SqliteStore
from tests.server.test_writer_thread import hold_writer, titles

Op = Callable[[sqlite3.Connection], int]


def tag(title: str, *, fail: bool = False) -> Op:
    def op(conn: sqlite3.Connection) -> int:
        account = conn.execute("SELECT id FROM accounts").fetchone()[0]
        cursor = conn.execute(
            "INSERT INTO tags (account_id, title, created) VALUES (?, ?, 1)", (account, title)
        )
        if fail:
            raise ValueError(f"{title} fails after its write")
        return int(cursor.lastrowid or 0)

    return op


def traced(store: SqliteStore) -> list[str]:
    """The statements the writer's connection runs from now on."""
    seen: list[str] = []
    conn = store.writer._conn
    assert conn is not None
    conn.set_trace_callback(seen.append)
    return seen


async def batch(store: SqliteStore, ops: list[tuple[Op, bool]]) -> list[object]:
    """Run `ops` (op, rerunnable) as one batch; each answer is its result or its exception."""
    held, gate = await hold_writer(store)
    queued = [
        asyncio.ensure_future(store.writer.submit(op, rerunnable=rerunnable))
        for op, rerunnable in ops
    ]
    await asyncio.sleep(0)
    gate.set()
    await held
    return list(await asyncio.gather(*queued, return_exceptions=True))


async def test_rerunnable_ops_share_one_savepoint(store: SqliteStore) -> None:
    await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    seen = traced(store)
    answers = await batch(store, [(tag(f"t{i}"), True) for i in range(5)])
    assert all(isinstance(a, int) for a in answers) and len(set(answers)) == 5
    assert titles(store.path) == [f"t{i}" for i in range(5)]
    assert seen.count("SAVEPOINT ops") == 1 and "SAVEPOINT op" not in seen


async def test_a_failing_rerunnable_op_fails_alone_and_the_others_run_once(
    store: SqliteStore,
) -> None:
    await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    runs: list[str] = []

    def counted(title: str, *, fail: bool = False) -> Op:
        inner = tag(title, fail=fail)

        def op(conn: sqlite3.Connection) -> int:
            runs.append(title)
            return inner(conn)

        return op

    answers = await batch(
        store,
        [
            (counted("plain"), False),  # its own savepoint, before the shared one: run once
            (counted("a"), True),
            (counted("bad", fail=True), True),
            (counted("b"), True),
        ],
    )
    assert isinstance(answers[2], ValueError)
    assert [isinstance(a, int) for a in answers] == [True, True, False, True]
    assert titles(store.path) == ["plain", "a", "b"]  # the failed op's write is gone, once each
    assert runs == ["plain", "a", "bad", "a", "bad", "b"]  # undone and run again one by one
    with sqlite3.connect(store.path) as conn:
        ids = [int(r[0]) for r in conn.execute("SELECT id FROM tags ORDER BY id")]
    assert ids == [answers[0], answers[1], answers[3]]  # results come from the run that stayed


async def test_a_lone_rerunnable_op_keeps_its_own_savepoint(store: SqliteStore) -> None:
    await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    seen = traced(store)
    answers = await batch(store, [(tag("x"), False), (tag("y", fail=True), True)])
    assert isinstance(answers[0], int) and isinstance(answers[1], ValueError)
    assert titles(store.path) == ["x"]
    assert "SAVEPOINT ops" not in seen and seen.count("SAVEPOINT op") == 2
