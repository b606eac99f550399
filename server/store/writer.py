"""Group commit: one writer task, one transaction and one fsync for many concurrent requests.

Every write is a plain function `op(conn) -> T` run on a single dedicated thread that owns the write
connection. Requests queue their op and await a future. The writer takes everything queued, runs it
inside one `BEGIN IMMEDIATE ... COMMIT`, each op under its own SAVEPOINT (so one failing op rolls
back alone and the others still commit), and only after COMMIT returns resolves the futures. With
`synchronous=FULL` in WAL mode the COMMIT is the fsync, so an acknowledged write is on disk, and
while one batch is being committed the next one fills up: under load one fsync serves many
requests, and with no load a lone request commits at once (no waiting for a batch to fill).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from server.store.base import StoreError

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
log = logging.getLogger("simhive.store.writer")

# Upper bound on ops per transaction, so one commit never holds the lock for too long.
MAX_BATCH = 512
# Rows per merged INSERT statement (see RowInsert): 64 x 11 parameters stays far below SQLite's
# variable limit, and at most 64 distinct statement texts live in the statement cache.
MERGE_ROWS = 64
# Under concurrent load the writer lets the event loop run up to this many more passes before
# it takes a batch, for as long as each pass brings new ops (see _gather).
GATHER_PASSES = 8


@dataclass(frozen=True)
class RowInsert:
    """A one-row INSERT that the writer may merge with its neighbours in a batch.

    Under load many requests each insert one row (one SMS per addsms). Every statement the writer
    thread runs releases the GIL for sqlite3_step and must win it back from the busy event loop,
    and those hand-overs cost both threads more CPU than SQLite's own work; so consecutive row
    inserts of one batch become one `INSERT ... VALUES (...), (...)`. The table must give rowids
    in insertion order without gaps inside one statement (INTEGER PRIMARY KEY AUTOINCREMENT and
    no explicit ids): the merged statement's ids are then lastrowid - n + 1 ... lastrowid.
    """

    head: str  # "INSERT INTO t(a, b, c) VALUES "
    values: str  # "(?, ?, 'const')"
    _sql: dict[int, str] = field(default_factory=dict, compare=False, repr=False)

    def sql(self, rows: int) -> str:
        text = self._sql.get(rows)
        if text is None:
            text = self._sql[rows] = self.head + ",".join([self.values] * rows)
        return text


@dataclass
class WriterStats:
    transactions: int = 0
    ops: int = 0
    largest_batch: int = 0


@dataclass
class _Pending:
    op: Op | None
    future: asyncio.Future[Any]
    atomic: bool = False
    insert: RowInsert | None = None  # with `row`: a mergeable one-row insert instead of `op`
    row: tuple[Any, ...] = ()
    result: Any = None
    error: BaseException | None = field(default=None)


class GroupCommitWriter:
    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simhive-writer")
        self._conn: sqlite3.Connection | None = None
        self._pending: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.stats = WriterStats()
        self._last_batch = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="simhive-group-commit")

    async def stop(self) -> None:
        """Commit what is queued, then close."""
        if self._task is not None:
            self._closing = True
            self._wakeup.set()
            await self._task
            self._task = None
        if self._conn is not None:
            conn = self._conn
            await asyncio.get_running_loop().run_in_executor(self._executor, _close, conn)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def submit(self, op: Callable[[sqlite3.Connection], T], *, atomic: bool = False) -> T:
        """Run `op` in the next group transaction; returns once that transaction is committed.

        `atomic=True` promises that the op writes with at most one statement and fails only
        before or in it: SQLite undoes a failed statement by itself, so the op needs no savepoint
        (two statements fewer, each a GIL hand-over, for the commonest write: one SMS).
        """
        if self._task is None or self._closing:
            raise StoreError("store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(op, future, atomic))
        self._wakeup.set()
        return await future

    async def insert(self, insert: RowInsert, row: tuple[Any, ...]) -> int:
        """Insert one row in the next group transaction; returns its rowid once committed.

        Consecutive inserts with the same RowInsert in one batch share one statement; a failing
        merged statement is retried row by row, so one bad row fails only its own request.
        """
        if self._task is None or self._closing:
            raise StoreError("store is not open")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(None, future, True, insert, row))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        pending = self._pending
        while True:
            if not pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._last_batch > 1:
                await self._gather()
            batch = [pending.popleft() for _ in range(min(len(pending), MAX_BATCH))]
            self._last_batch = len(batch)
            try:
                await loop.run_in_executor(self._executor, self._apply, batch)
            except BaseException as exc:  # commit failed: nothing of this batch is durable
                log.error("group commit of %d ops failed: %s", len(batch), exc)
                for item in batch:
                    item.error = StoreError(f"write failed: {exc}")
                    item.result = None
            for item in batch:
                if item.future.done():  # the awaiting request was cancelled
                    continue
                if item.error is not None:
                    item.future.set_exception(item.error)
                else:
                    item.future.set_result(item.result)

    async def _gather(self) -> None:
        """Let requests that are already being parsed join the coming batch.

        Every commit costs the writer thread an fsync and a few GIL hand-overs with the event
        loop, whatever its size, and those dominate the CPU of a small batch. When the last batch
        had company (concurrent clients), yield to the loop pass by pass while each pass still
        queues new ops: requests arriving back to back join, and the first quiet pass ends the
        wait, so a lone request or a lull never waits for a timer (no fixed commit delay).
        """
        pending = self._pending
        seen = len(pending)
        for _ in range(GATHER_PASSES):
            await asyncio.sleep(0)
            if len(pending) == seen or len(pending) >= MERGE_ROWS:
                return
            seen = len(pending)

    def _apply(self, batch: list[_Pending]) -> None:
        conn = self._conn
        assert conn is not None
        if _only_merged_inserts(batch) and _insert_alone(conn, batch):
            self._count(batch)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            if len(batch) == 1:  # nothing to isolate it from: no savepoint needed
                try:
                    batch[0].result = _run_one(conn, batch[0])
                except Exception as exc:
                    batch[0].error = _as_store_error(exc)
                    conn.execute("ROLLBACK")
                    return
            else:
                self._apply_each(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self._count(batch)

    def _count(self, batch: list[_Pending]) -> None:
        self.stats.transactions += 1
        self.stats.ops += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))

    def _apply_each(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        index = 0
        while index < len(batch):
            pending = batch[index]
            insert = pending.insert
            if insert is not None:
                end = index + 1
                while end < len(batch) and end - index < MERGE_ROWS and batch[end].insert is insert:
                    end += 1
                if end - index > 1:
                    _insert_merged(conn, batch[index:end])
                    index = end
                    continue
            index += 1
            if pending.atomic:
                _run_atomic(conn, pending)
                continue
            assert pending.op is not None
            conn.execute("SAVEPOINT op")
            try:
                pending.result = pending.op(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                pending.error = _as_store_error(exc)
            conn.execute("RELEASE op")


def _run_one(conn: sqlite3.Connection, pending: _Pending) -> Any:
    if pending.insert is not None:
        return int(conn.execute(pending.insert.sql(1), pending.row).lastrowid or 0)
    assert pending.op is not None
    return pending.op(conn)


def _run_atomic(conn: sqlite3.Connection, pending: _Pending) -> None:
    """Run a one-statement op without a savepoint: a failed statement is undone by SQLite."""
    try:
        pending.result = _run_one(conn, pending)
    except Exception as exc:
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back (disk full, I/O error): nothing of this
            # batch may be reported as written.
            raise
        pending.error = _as_store_error(exc)


def _only_merged_inserts(batch: list[_Pending]) -> bool:
    insert = batch[0].insert
    return (
        insert is not None
        and len(batch) <= MERGE_ROWS
        and all(pending.insert is insert for pending in batch)
    )


def _execute_merged(conn: sqlite3.Connection, run: list[_Pending]) -> None:
    """One INSERT for all rows of `run` (same RowInsert); each gets its id, or it raises."""
    insert = run[0].insert
    assert insert is not None
    params = [value for pending in run for value in pending.row]
    cursor = conn.execute(insert.sql(len(run)), params)
    first = int(cursor.lastrowid or 0) - len(run) + 1
    for offset, pending in enumerate(run):
        pending.result = first + offset


def _insert_alone(conn: sqlite3.Connection, batch: list[_Pending]) -> bool:
    """The whole batch as one autocommit statement: SQLite makes it its own transaction and
    commits it (fsync, synchronous=FULL) before returning. One statement instead of BEGIN, INSERT,
    COMMIT is two GIL hand-overs fewer per batch, the commonest batch under addsms load. False if
    it failed: SQLite undid it, and the caller retries the batch in a transaction row by row."""
    try:
        _execute_merged(conn, batch)
    except Exception as exc:
        # Not only sqlite3.Error: a value that cannot be bound (a lone surrogate is a
        # UnicodeEncodeError) fails before the statement runs, and must fail only its own row.
        if conn.in_transaction:  # not expected for an autocommit statement; be sure
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError):
            # Lock held past busy_timeout, disk full, I/O error: nothing row-specific, so a
            # retry row by row would only wait for the lock again; the batch fails as a whole.
            raise
        return False
    return True


def _insert_merged(conn: sqlite3.Connection, run: list[_Pending]) -> None:
    try:
        _execute_merged(conn, run)
    except Exception:
        if not conn.in_transaction:
            raise  # SQLite rolled the whole transaction back: the batch fails as a whole
        # A failed statement is undone by SQLite alone; find the bad row(s) one by one.
        for pending in run:
            _run_atomic(conn, pending)


def _close(conn: sqlite3.Connection) -> None:
    # SQLite's advice for every connection that wrote: refresh the planner's statistics where
    # they are stale, so filtered queries keep choosing the right index as tables grow.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA optimize")
    conn.close()


def _as_store_error(exc: Exception) -> Exception:
    """SQLite's operational failures (lock held too long, disk full, I/O error) are the store's
    to report, as StoreError (HTTP 503: try again); an op's own exceptions pass unchanged."""
    if isinstance(exc, sqlite3.OperationalError):
        error = StoreError(f"write failed: {exc}")
        error.__cause__ = exc
        return error
    return exc
