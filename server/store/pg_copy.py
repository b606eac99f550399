"""Move an installation from SQLite to PostgreSQL (`simhive-server db copy`).

Both databases are brought to the latest schema version first (their migration lists mirror
each other, so their tables have the same columns), then every table is copied in foreign-key
order in ONE PostgreSQL transaction: a copy that fails leaves the target as it was. The target
must hold no data. The triggers of the target stay off during the copy (their rows, the webhook
outbox and the message counters, are copied as they are), and each identity column continues
after the highest copied id, so new sms_ids never repeat old ones. The source is not changed
beyond its own migrations.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from simhive.server.store import sqlite_schema
from simhive.server.store.base import StoreError
from simhive.server.store.pg import PgStore
from simhive.server.store.pg_schema import LATEST_VERSION

BATCH_ROWS = 5_000
_SKIP = {"schema_migrations"}


@dataclass(frozen=True)
class CopyResult:
    tables: dict[str, int]  # rows copied per table


async def table_order(conn: asyncpg.Connection) -> list[str]:
    """The schema's tables, each after every table its foreign keys point to."""
    tables = [
        str(r[0])
        for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        )
    ]
    deps: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in await conn.fetch(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE c.contype = 'f' AND n.nspname = current_schema()"
    ):
        child_name, parent_name = str(child).split(".")[-1], str(parent).split(".")[-1]
        if child_name in deps and parent_name != child_name:
            deps[child_name].add(parent_name)
    order: list[str] = []
    while deps:
        ready = sorted(t for t, d in deps.items() if not d - set(order))
        if not ready:
            raise StoreError(f"foreign keys form a cycle among {sorted(deps)}")
        for t in ready:
            order.append(t)
            del deps[t]
    return [t for t in order if t not in _SKIP]


async def copy_sqlite_to_pg(source: Path, target: PgStore) -> CopyResult:
    if not source.is_file():  # noqa: ASYNC240 (one stat before a long copy)
        raise StoreError(f"no SQLite database at {source}")
    src = sqlite3.connect(source, timeout=10)
    try:
        sqlite_schema.migrate(src)  # the same version as the target, whatever it was
        src_version = int(src.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0])
        if src_version != LATEST_VERSION:
            raise StoreError(
                f"the SQLite database is at schema version {src_version}, this simhive's"
                f" PostgreSQL schema at {LATEST_VERSION}; use the same simhive version for both"
            )
        await target.migrate()
        conn = await target.connect()
        try:
            return await _copy(src, conn)
        finally:
            await conn.close()
    finally:
        src.close()


async def _copy(src: sqlite3.Connection, conn: asyncpg.Connection) -> CopyResult:
    order = await table_order(conn)
    sqlite_tables = {
        str(r[0]) for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    # AUTOINCREMENT keeps the highest id ever given (rows may have been deleted since).
    sequences = {str(n): int(v) for n, v in src.execute("SELECT name, seq FROM sqlite_sequence")}
    copied: dict[str, int] = {}
    async with conn.transaction():
        for table in order:
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                raise StoreError(f"the target database already has data (table {table})")
        for table in order:
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for table in order:
            if table not in sqlite_tables:
                raise StoreError(f"the SQLite database has no table {table}")
            columns = [str(r[1]) for r in src.execute(f"PRAGMA table_info({table})")]
            cursor = src.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid")
            total = 0
            while rows := cursor.fetchmany(BATCH_ROWS):
                await conn.copy_records_to_table(table, records=rows, columns=columns)
                total += len(rows)
            copied[table] = total
            identity = await conn.fetchval(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass"
                " AND attidentity <> '' AND NOT attisdropped",
                table,
            )
            highest = max(
                int(await conn.fetchval(f"SELECT COALESCE(MAX({identity}), 0) FROM {table}"))
                if identity is not None
                else 0,
                sequences.get(table, 0),
            )
            if identity is not None and highest:
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{identity}'), $1)",
                    highest,
                )
        for table in order:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    return CopyResult(copied)
