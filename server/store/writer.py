"""Group commit: one writer thread, one transaction and one fsync for many concurrent requests.

Every write is a plain function `op(conn) -> T` run on a single dedicated thread that owns the write
connection. Requests queue their op and await a future. The writer takes everything queued, runs it
inside one `BEGIN IMMEDIATE ... COMMIT`, each op that may write with several statements under its
own SAVEPOINT (so one failing op rolls back alone and the others still commit; an op that writes
with one statement needs none, see `submit`), and only after COMMIT returns resolves the futures.
With `synchronous=FULL` in WAL mode the COMMIT is the fsync, so an acknowledged write is on disk,
and while one batch is being committed the next one fills up: under load one fsync serves many
requests, and with no load a lone request commits at once (no waiting for a batch to fill).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from simhive.server.store.base import StoreError

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
    """The writer thread and the batching state machine that feeds it.

    The thread is our own, not an executor's: a batch is handed over with one queue put and its
    results come back with one call_soon_threadsafe. Through run_in_executor every batch also
    built a concurrent future, chained it to an asyncio future and woke a writer task, about
    25 us of event-loop CPU per batch (bench server_addsms). Batching runs as loop callbacks:
    `_wake` one loop pass after the first op arrives, `_gather_pass` for each further pass it
    waits for company, `_finish` when the thread has committed.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        before_commit: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self._connect = connect
        # Writes the batch's ops leave for the end of their transaction (sqlite_agent.SeenStamps),
        # run on this thread after the last op and before COMMIT.
        self._before_commit = before_commit
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending: deque[_Pending] = deque()
        self._open = False
        self._closing = False
        # Busy from the moment a batch is being gathered until its results are set.
        self._busy = False
        self._scheduled = False
        self._passes = 0
        self._seen = 0
        self._drained: asyncio.Future[None] | None = None
        self.stats = WriterStats()
        self._last_batch = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # Daemon: a store that was never closed must not keep the interpreter from exiting;
        # stop() ends the thread properly.
        self._thread = threading.Thread(
            target=self._serve, name="simhive-writer", args=(self._jobs,), daemon=True
        )
        self._thread.start()
        self._conn = await self._call(self._connect)
        self._closing = False
        self._drained = None
        self._open = True

    async def stop(self) -> None:
        """Commit what is queued, then close."""
        if self._open:
            self._closing = True
            if self._busy or self._pending:
                assert self._loop is not None
                self._drained = self._loop.create_future()
                await self._drained
            self._open = False
        if self._conn is not None:
            conn = self._conn
            await self._call(lambda: _close(conn))
            self._conn = None
        if self._thread is not None:
            self._jobs.put(None)
            thread = self._thread
            self._thread = None
            await asyncio.to_thread(thread.join)

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        while (job := jobs.get()) is not None:
            job()

    async def _call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the writer thread outside any batch (connect, close)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def job() -> None:
            try:
                result = fn()
            except BaseException as exc:
                _post(loop, _set_exception, future, exc)
            else:
                _post(loop, _set_result, future, result)

        self._jobs.put(job)
        return await future

    async def submit(self, op: Callable[[sqlite3.Connection], T], *, atomic: bool = False) -> T:
        """Run `op` in the next group transaction; returns once that transaction is committed.

        `atomic=True` promises that the op writes with at most one statement and fails only
        before or in it (reads after it may still fail, on the storage only): SQLite undoes a
        failed statement by itself, so the op needs no savepoint (two statements fewer, each a
        GIL hand-over, for the commonest writes: one SMS, a commit). Failure semantics are those
        of an op under a savepoint: the op's caller gets its exception, nothing of the op stays,
        the batch's other ops commit; and when SQLite rolled the whole transaction back (disk
        full, I/O error, see `_run_atomic`) the whole batch fails, as a savepoint's ROLLBACK TO
        fails then. If an atomic op fails other than on a constraint after something of it was
        written (a read past its write failed, or the promise was wrong), that write cannot be
        undone alone: the batch fails as a whole rather than commit half an op.
        """
        result: T = await self._enqueue(op, atomic)
        return result

    async def insert(self, insert: RowInsert, row: tuple[Any, ...]) -> int:
        """Insert one row in the next group transaction; returns its rowid once committed.

        Consecutive inserts with the same RowInsert in one batch share one statement; a failing
        merged statement is retried row by row, so one bad row fails only its own request.
        """
        rowid: int = await self._enqueue(None, True, insert, row)
        return rowid

    def _enqueue(
        self,
        op: Op | None,
        atomic: bool,
        insert: RowInsert | None = None,
        row: tuple[Any, ...] = (),
    ) -> asyncio.Future[Any]:
        """Queue one op for the next batch; its future is set once that transaction committed."""
        if not self._open or self._closing:
            raise StoreError("store is not open")
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._pending.append(_Pending(op, future, atomic, insert, row))
        if not self._busy and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._wake)
        return future

    def _wake(self) -> None:
        """Start the next batch: at once after a lone op, else after gathering (below)."""
        self._scheduled = False
        if self._busy or not self._pending:
            return
        assert self._loop is not None
        self._busy = True
        if self._last_batch > 1:
            self._passes = 0
            self._seen = len(self._pending)
            self._loop.call_soon(self._gather_pass)
        else:
            self._dispatch()

    def _gather_pass(self) -> None:
        """Let requests that are already being parsed join the coming batch.

        Every commit costs the writer thread an fsync and a few GIL hand-overs with the event
        loop, whatever its size, and those dominate the CPU of a small batch. When the last batch
        had company (concurrent clients), wait pass by pass while each loop pass still queues new
        ops (up to GATHER_PASSES): requests arriving back to back join, and the first quiet pass
        ends the wait, so a lone request or a lull never waits for a timer (no fixed delay).
        """
        self._passes += 1
        count = len(self._pending)
        if count == self._seen or count >= MERGE_ROWS or self._passes >= GATHER_PASSES:
            self._dispatch()
            return
        self._seen = count
        assert self._loop is not None
        self._loop.call_soon(self._gather_pass)

    def _dispatch(self) -> None:
        pending = self._pending
        batch = [pending.popleft() for _ in range(min(len(pending), MAX_BATCH))]
        self._last_batch = len(batch)
        loop = self._loop
        assert loop is not None

        def job() -> None:
            error: BaseException | None = None
            try:
                self._apply(batch)
            except BaseException as exc:  # commit failed: nothing of this batch is durable
                error = exc
            _post(loop, self._finish, batch, error)

        self._jobs.put(job)

    def _finish(self, batch: list[_Pending], error: BaseException | None) -> None:
        if error is not None:
            log.error("group commit of %d ops failed: %s", len(batch), error)
            for item in batch:
                item.error = StoreError(f"write failed: {error}")
                item.result = None
        for item in batch:
            if item.future.done():  # the awaiting request was cancelled
                continue
            if item.error is not None:
                item.future.set_exception(item.error)
            else:
                item.future.set_result(item.result)
        self._busy = False
        if self._pending:
            self._wake()
        elif self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

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
            if self._before_commit is not None:
                self._before_commit(conn)
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


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Hand a result from the writer thread to the event loop (gone: nobody waits for it)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _run_one(conn: sqlite3.Connection, pending: _Pending) -> Any:
    if pending.insert is not None:
        return int(conn.execute(pending.insert.sql(1), pending.row).lastrowid or 0)
    assert pending.op is not None
    return pending.op(conn)


def _run_atomic(conn: sqlite3.Connection, pending: _Pending) -> None:
    """Run a one-statement op without a savepoint: a failed statement is undone by SQLite.

    SQLite undoes a failing statement alone with its statement journal and keeps the transaction
    open, except after some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY, SQLITE_NOMEM,
    SQLITE_INTERRUPT, or an ON CONFLICT ROLLBACK) where it may have to roll the whole transaction
    back; sqlite3_get_autocommit (`in_transaction`) is the only way to tell which it did. An op
    under a savepoint sees the same: its ROLLBACK TO fails when the transaction is gone, and the
    batch fails.

    A constraint error comes from the statement that writes, and SQLite aborted that statement.
    Any other failure might come after the write (a read past it hitting an I/O error, or an op
    that broke its promise), and then the write is still in the transaction with no savepoint to
    undo it alone. `total_changes` tells: it counts the rows of every statement and trigger that
    completed (also a trigger of the failed statement, which SQLite did undo: so it may say
    "moved" needlessly, but never "unchanged" while a row the op wrote is still there). Unchanged,
    the op fails alone as under a savepoint; moved, the batch fails as a whole rather than commit
    half an op its caller saw fail (a one-SMS insert whose id read-back failed would otherwise be
    stored, and sent, while its client was told to try again).
    """
    changes = conn.total_changes
    try:
        pending.result = _run_one(conn, pending)
    except Exception as exc:
        if not conn.in_transaction:
            # SQLite rolled the whole transaction back (disk full, I/O error): nothing of this
            # batch may be reported as written.
            raise
        if not isinstance(exc, sqlite3.IntegrityError) and conn.total_changes != changes:
            # logged with the batch's failure (_finish)
            raise StoreError(f"an atomic op failed after it may have written: {exc!r}") from exc
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
