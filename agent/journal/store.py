"""The journal's SQLite connections: group-committed writes, concurrent reads.

Every write is a plain function `op(conn) -> T` queued to one writer task. The writer takes
everything queued, runs it on its own thread and connection inside one `BEGIN IMMEDIATE ... COMMIT`
and only after COMMIT returns resolves the callers' futures (one failing op rolls back alone:
see `_apply`). In WAL mode with `synchronous=FULL` the COMMIT is the fsync: an acknowledged
write is on disk, and the dispatchers of 16 modems marking their messages
"dispatching" at the same moment share one fsync instead of queueing for 16 (the same pattern
as the server's store; the agent does not import server code).

Reads use a second connection, on the event loop's own thread: the agent's reads are small
indexed look-ups (tens of microseconds), and handing each to a thread cost three times the
read itself in CPU. WAL lets them proceed while a commit is being synced (a reader never waits
for the writer), and they only ever see committed, hence durable, rows: a report event that
the report loop can read is one that survives a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
log = logging.getLogger(__name__)

# Ops per transaction at most, so one commit never holds the write lock for long.
MAX_BATCH = 256
# Reads in a row (tens of microseconds each) before Store.read lets other tasks run.
READS_PER_YIELD = 8


class JournalError(RuntimeError):
    """The journal file cannot be opened, is not a simhive journal, or a write failed."""


@dataclass
class StoreStats:
    transactions: int = 0
    ops: int = 0
    largest_batch: int = 0


@dataclass
class _Pending:
    op: Op
    future: asyncio.Future[Any]
    # Run on the event loop with the op's result once it is committed, before the future is
    # resolved and before anything else runs on the loop (agent/journal/loads.py).
    after: Callable[[Any], None] | None = None
    result: Any = None
    error: BaseException | None = field(default=None)


def connect(path: Path, schema: str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a COMMIT is on disk before we act on it (before AT+CMGS, before CMGD or CNMA).
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        # 512 KiB of page cache per connection instead of SQLite's 2 MiB: the journal's queries
        # are indexed lookups of recent rows, and the OS page cache holds the file anyway; with
        # the default, the two connections' caches grew the agent by about 3 MiB under load.
        conn.execute("PRAGMA cache_size=-512")
        if schema:
            conn.executescript(schema)
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _create_private(path: Path) -> None:
    """The journal holds SMS bodies and numbers: its directory is made 0700 and its file 0600 if
    missing (SQLite gives the -wal and -shm files the database file's mode)."""
    if not path.parent.is_dir():
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Store:
    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        self._schema = schema
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="journal-write")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._pending: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        # Writes queued and writes settled (committed or failed) so far, and who waits for
        # a count to be settled (see `settled`).
        self._queued = 0
        self._settled = 0
        self._barriers: list[tuple[int, asyncio.Future[None]]] = []
        self.stats = StoreStats()
        self._reads = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _create_private(self.path)
        except OSError as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from None
        try:
            self._wconn = await loop.run_in_executor(self._writer, connect, self.path, self._schema)
            self._rconn = connect(self.path, "")
        except sqlite3.DatabaseError as exc:
            await self._close_connections()
            raise JournalError(f"{self.path} is not a usable journal: {exc}") from None
        except (OSError, sqlite3.Error) as exc:
            await self._close_connections()
            raise JournalError(f"cannot open journal {self.path}: {exc}") from None
        self._task = asyncio.create_task(self._run(), name="journal-group-commit")

    async def close(self) -> None:
        """Commit what is queued, then close."""
        if self._task is not None:
            self._closing = True
            self._wakeup.set()
            await self._task
            self._task = None
        await self._close_connections()
        self._writer.shutdown(wait=True)

    async def _close_connections(self) -> None:
        loop = asyncio.get_running_loop()
        if self._wconn is not None:
            await loop.run_in_executor(self._writer, self._wconn.close)
            self._wconn = None
        if self._rconn is not None:
            self._rconn.close()
            self._rconn = None

    def write_nowait(
        self,
        op: Callable[[sqlite3.Connection], T],
        after: Callable[[T], None] | None = None,
    ) -> asyncio.Future[T]:
        """Queue `op` for the next group commit; the future resolves once it is on disk.

        Queued in call order: a later write is never committed before an earlier one, so a
        write the caller does not wait for is durable by the time any later write is.
        `after(result)` runs on the event loop right after the commit (not if the op failed).
        """
        if self._task is None or self._closing:
            raise JournalError("journal is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(op, future, after))
        self._queued += 1
        self._wakeup.set()
        return future

    async def write(
        self, op: Callable[[sqlite3.Connection], T], after: Callable[[T], None] | None = None
    ) -> T:
        return await self.write_nowait(op, after)

    @property
    def idle(self) -> bool:
        """No write is queued or being committed (every `after` has run)."""
        return self._settled == self._queued

    async def settled(self) -> None:
        """Return once every write queued before this call is committed (or has failed).

        Costs no transaction of its own: with nothing queued or committing it returns at once.
        """
        if self._task is not None and self._settled < self._queued:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._barriers.append((self._queued, done))
            await done

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(conn)` on the read connection, on this thread (see the module docstring)."""
        conn = self._rconn
        if conn is None:
            raise JournalError("journal is not open")
        result = fn(conn)
        # Every READS_PER_YIELD-th read lets other tasks run, as when reads went to a thread:
        # a loop that only reads must not hold the event loop. Not every read: the agent's
        # loops await a write, a request or a wake-up soon after their reads, and a yield per
        # read was a task step per read (about five per SMS).
        self._reads += 1
        if self._reads % READS_PER_YIELD == 0:
            await asyncio.sleep(0)
        return result

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
            batch = [pending.popleft() for _ in range(min(len(pending), MAX_BATCH))]
            try:
                await loop.run_in_executor(self._writer, self._apply, batch)
            except BaseException as exc:  # the commit failed: nothing of this batch is durable
                log.error("journal: commit of %d write(s) failed: %s", len(batch), exc)
                for item in batch:
                    item.error = JournalError(f"journal write failed: {exc}")
            for item in batch:
                if item.after is not None and item.error is None:
                    try:
                        item.after(item.result)
                    except Exception:  # a bookkeeping bug must not stop the journal
                        log.exception("journal: after-commit step failed")
            for item in batch:
                if item.future.done():  # its caller was cancelled; the write stands
                    continue
                if item.error is not None:
                    item.future.set_exception(item.error)
                else:
                    item.future.set_result(item.result)
            self._settled += len(batch)
            if self._barriers:
                waiting = []
                for upto, done in self._barriers:
                    if upto > self._settled:
                        waiting.append((upto, done))
                    elif not done.done():
                        done.set_result(None)
                self._barriers = waiting

    def _apply(self, batch: list[_Pending]) -> None:
        conn = self._wconn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            failed = self._run_ops(conn, batch)
            if failed and len(batch) > 1:
                # Undo the whole group and run it again with each op under a SAVEPOINT, so
                # the failing op rolls back alone. Ops are functions of the database only, so
                # the second run gives every other op the result it would have had.
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                self._run_isolated(conn, batch)
            elif failed:
                conn.execute("ROLLBACK")
                return
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self.stats.transactions += 1
        self.stats.ops += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))

    @staticmethod
    def _run_ops(conn: sqlite3.Connection, batch: list[_Pending]) -> bool:
        """Every op in one go, without a SAVEPOINT each (two statements per op saved: nearly
        every group succeeds); True, with the failing op's error kept, when one raised."""
        for item in batch:
            try:
                item.result = item.op(conn)
            except Exception as exc:
                if not conn.in_transaction:
                    raise  # SQLite rolled everything back (disk full, I/O error)
                item.error = exc
                return True
        return False

    @staticmethod
    def _run_isolated(conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        for item in batch:
            item.result, item.error = None, None
            conn.execute("SAVEPOINT op")
            try:
                item.result = item.op(conn)
            except Exception as exc:
                if not conn.in_transaction:
                    raise  # SQLite rolled everything back (disk full, I/O error)
                conn.execute("ROLLBACK TO op")
                item.error = exc
            conn.execute("RELEASE op")
