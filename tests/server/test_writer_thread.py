"""The group-commit writer's own thread and its batching state machine (writer.py).

Ops queue while the writer thread commits the batch before, form the next batch together, and
every one gets its own result; closing commits what is queued; a request that gave up does not
disturb the others; the writer can be opened again after a close.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from simhive.server.store.base import StoreError
from simhive.server.store.sqlite import SqliteStore


async def hold_writer(store: SqliteStore) -> tuple[asyncio.Future[None], threading.Event]:
    """Park the writer thread inside an op until the returned gate is set; once this returns,
    ops submitted queue behind that batch."""
    gate, entered = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(30)

    held = asyncio.ensure_future(store.writer.submit(hold))
    assert await asyncio.to_thread(entered.wait, 30)
    return held, gate


def tag_op(title: str) -> Callable[[sqlite3.Connection], int]:
    def op(conn: sqlite3.Connection) -> int:
        account = conn.execute("SELECT id FROM accounts").fetchone()[0]
        cursor = conn.execute(
            "INSERT INTO tags (account_id, title, created) VALUES (?, ?, 1)", (account, title)
        )
        return int(cursor.lastrowid or 0)

    return op


def titles(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [str(r[0]) for r in conn.execute("SELECT title FROM tags ORDER BY id")]


async def test_ops_run_on_one_thread_that_is_not_the_loop(store: SqliteStore) -> None:
    names = [await store.writer.submit(lambda conn: threading.current_thread().name)]
    names += await asyncio.gather(
        *(store.writer.submit(lambda conn: threading.current_thread().name) for _ in range(5))
    )
    assert set(names) == {"simhive-writer"}
    assert threading.current_thread().name != "simhive-writer"


async def test_ops_queued_behind_a_batch_form_the_next_one(store: SqliteStore) -> None:
    await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    held, gate = await hold_writer(store)
    before = store.writer.stats.transactions
    queued = [asyncio.ensure_future(store.writer.submit(tag_op(f"t{i}"))) for i in range(20)]
    await asyncio.sleep(0)
    gate.set()
    await held
    ids = await asyncio.gather(*queued)
    assert len(set(ids)) == 20
    assert store.writer.stats.transactions - before == 2  # the held batch, then all 20 at once
    assert titles(store.path) == [f"t{i}" for i in range(20)]


async def test_a_cancelled_request_leaves_the_batch_alone(store: SqliteStore) -> None:
    await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    held, gate = await hold_writer(store)
    gone = asyncio.ensure_future(store.writer.submit(tag_op("gone")))
    kept = asyncio.ensure_future(store.writer.submit(tag_op("kept")))
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    await held
    assert await kept > 0
    # The op of the request that gave up may still commit (its client never hears of it).
    assert "kept" in titles(store.path)


async def test_close_commits_what_is_queued_then_refuses(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "db.sqlite3")
    await s.open()
    await s.create_account("a@example.com", "x", "h1", "UTC", 1)
    queued = [asyncio.ensure_future(s.writer.submit(tag_op(f"t{i}"))) for i in range(10)]
    await asyncio.sleep(0)  # queued, not yet committed
    await s.close()
    assert all(task.done() and task.result() > 0 for task in queued)
    assert titles(s.path) == [f"t{i}" for i in range(10)]
    with pytest.raises(StoreError):
        await s.writer.submit(tag_op("late"))
    assert not [t for t in threading.enumerate() if t.name == "simhive-writer"]


async def test_a_closed_writer_opens_again(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "db.sqlite3")
    await s.open()
    await s.create_account("a@example.com", "x", "h1", "UTC", 1)
    await s.close()
    await s.open()
    try:
        assert await s.writer.submit(tag_op("again")) > 0
    finally:
        await s.close()
    assert titles(s.path) == ["again"]


async def test_a_failed_commit_fails_its_batch_and_the_writer_goes_on(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    writer = store.writer
    apply = writer._apply
    calls: list[int] = []

    def fail_once(batch: list[object]) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        apply(batch)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "_apply", fail_once)
    results = await asyncio.gather(
        writer.submit(tag_op("a")), writer.submit(tag_op("b")), return_exceptions=True
    )
    assert [type(r) for r in results] == [StoreError, StoreError]
    assert await writer.submit(tag_op("after")) > 0
    assert titles(store.path) == ["after"]
