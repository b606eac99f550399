"""The database of an in-process app test, on either engine: a factory of (unopened) stores on it
and plain SQL for what the interfaces do not show. The console suites take it as the `db`
fixture: a SQLite file in tests/console, a PostgreSQL schema when tests/store reruns them."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from simhive.server.store.base import Store
from simhive.server.store.pg import PgStore
from simhive.server.store.sqlite import SqliteStore

_MARK = re.compile(r"\?")


@dataclass(frozen=True)
class AppDb:
    path: Path | None = None  # SQLite
    url: str = ""  # PostgreSQL: the database and the test's schema
    schema: str = ""

    def store(self) -> Store:
        if self.path is not None:
            return SqliteStore(self.path)
        return PgStore(self.url, schema=self.schema)

    async def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """`sql` with SQLite's `?` marks (turned into `$n` for PostgreSQL); every row."""
        if self.path is not None:
            with closing(sqlite3.connect(self.path)) as conn, conn:
                return [tuple(r) for r in conn.execute(sql, params)]
        numbered = iter(range(1, len(params) + 1))
        pg_sql = _MARK.sub(lambda _: f"${next(numbered)}", sql)
        pg = await asyncpg.connect(self.url, server_settings={"search_path": self.schema})
        try:
            return [tuple(r) for r in await pg.fetch(pg_sql, *params)]
        finally:
            await pg.close()

    async def row(self, sql: str, *params: Any) -> tuple[Any, ...]:
        found = await self.rows(sql, *params)
        assert found, sql
        return found[0]
