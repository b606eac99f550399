"""The part every journal area builds on: opening the file and running statements."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from simhive.agent.journal.loads import SlotLoads
from simhive.agent.journal.records import Statement
from simhive.agent.journal.schema import SCHEMA, upgrade
from simhive.agent.journal.store import JournalError, Store

T = TypeVar("T")
log = logging.getLogger(__name__)


def run_statements(conn: sqlite3.Connection, statements: Iterable[Statement]) -> None:
    for sql, args in statements:
        conn.execute(sql, args)


class JournalBase:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._store: Store | None = None
        self.loads = SlotLoads()

    async def open(self) -> None:
        store = Store(self.path, SCHEMA)
        await store.open()
        self._store = store
        if await self._write(upgrade):
            log.info("journal %s: outbox table brought up to date (kept every row)", self.path)

    async def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await store.close()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise JournalError("journal is not open")
        return self._store

    def _forget_loads(self, _result: object) -> None:
        self.loads.forget()

    async def _write(
        self, op: Callable[[sqlite3.Connection], T], after: Callable[[T], None] | None = None
    ) -> T:
        """Run `op` in the next group commit; returns once it is on disk. `after`: what it
        does to the SIMs' loads (agent/journal/loads.py); by default they are read again."""
        return await self.store.write(op, after or self._forget_loads)

    def _write_nowait(
        self, op: Callable[[sqlite3.Connection], T], after: Callable[[T], None] | None = None
    ) -> asyncio.Future[T]:
        return self.store.write_nowait(op, after or self._forget_loads)

    async def settled(self) -> None:
        """Return once every write queued before the call is on disk (or has failed)."""
        await self.store.settled()

    async def _tx(
        self, statements: Sequence[Statement], after: Callable[[None], None] | None = None
    ) -> None:
        """The statements as one unit: all of them are on disk, or none."""
        if statements:
            await self._write(lambda conn: run_statements(conn, statements), after)

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def fetch(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(sql, args).fetchall()

        return await self.store.read(fetch)
