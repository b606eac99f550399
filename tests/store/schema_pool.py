"""Already-migrated PostgreSQL schemas for the tests, reused instead of migrated per test.

Migrating a new schema is PostgreSQL DDL (some 40 tables with their indexes, triggers and
functions): 0.5 - 0.7 s a test on a quiet machine, several times that under load, paid by some
200 tests. TRUNCATE of every table costs about as much (it gives each table new files). Deleting
the rows of a schema a test has finished with costs a few milliseconds, so each test process
keeps the schemas its tests gave back and hands them out again:

- `lease(url)` yields the name of a migrated schema with no rows, from the pool or migrated now;
- on exit the schema is reset (every table but schema_migrations emptied in one transaction with
  triggers and foreign keys off, identity sequences set back to their start) and goes back to
  the pool only when it is provably as a fresh one: no connection of the test is left on the
  database (so no LISTEN on the schema's channel, no advisory lock), every table is empty, every
  sequence unread, and the catalog fingerprint (tables, columns, defaults, indexes, constraints,
  triggers, functions, sequences, schema_migrations) equals the one taken right after it was
  migrated. Otherwise it is dropped, as every schema was before.
- `lease(url, fresh=True)` yields a new, empty schema (dropped after): for the tests that run
  migrations themselves or explain plans (dead rows of earlier tests would show in the buffers a
  scan touches). Tests mark that need with `@pytest.mark.fresh_schema`.

Each xdist worker is a process with a scratch database of its own, so the pool is per process
and "no other connection on the database" is a check on this test's own leftovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest

from simhive.server.store import pg_schema

# How long a reset waits for the test's closed connections to leave pg_stat_activity (a closed
# asyncpg connection's backend exits a moment after the client): past it, the schema is dropped.
QUIET_WAIT_SECONDS = 2.0


@dataclass
class _Pool:
    free: list[tuple[str, str]] = field(default_factory=list)  # (schema, fingerprint when fresh)
    reused: int = 0
    dropped: int = 0  # given back but not provably clean


_POOLS: dict[str, _Pool] = {}  # by database URL


def pool(url: str) -> _Pool:
    return _POOLS.setdefault(url, _Pool())


def wants_fresh(request: pytest.FixtureRequest) -> bool:
    """Whether the test is marked `fresh_schema` (the marker is declared in conftest.py)."""
    return request.node.get_closest_marker("fresh_schema") is not None


def _new_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


async def catalog(conn: asyncpg.Connection, schema: str) -> str:
    """Everything a migration makes in `schema` and a test could change, as text with the
    schema's name taken out (so two schemas compare): relations (kind, persistence, options),
    columns (type, null, identity, default), indexes (valid or not), constraints, triggers
    (enabled or not), functions and sequences (parameters, and whether read since their
    start)."""
    text = await conn.fetchval(
        """
        WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1)
        SELECT concat_ws(E'\n',
          (SELECT string_agg(format('%s %s %s %s %s', c.relname, c.relkind, c.relpersistence,
                  c.relrowsecurity, c.reloptions), ',' ORDER BY c.relname)
             FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)),
          (SELECT string_agg(format('%s.%s %s %s %s %s %s', c.relname, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
                  a.attgenerated, pg_get_expr(d.adbin, d.adrelid)),
                  ',' ORDER BY c.relname, a.attnum)
             FROM pg_class c
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
             WHERE c.relnamespace = (SELECT oid FROM ns)),
          (SELECT string_agg(format('%s %s', pg_get_indexdef(i.indexrelid), i.indisvalid),
                  ',' ORDER BY c.relname)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE c.relnamespace = (SELECT oid FROM ns)),
          (SELECT string_agg(format('%s %s %s %s', k.conrelid::regclass, k.conname,
                  pg_get_constraintdef(k.oid), k.convalidated), ','
                  ORDER BY k.conrelid::regclass::text, k.conname)
             FROM pg_constraint k WHERE k.connamespace = (SELECT oid FROM ns)),
          (SELECT string_agg(format('%s %s', pg_get_triggerdef(t.oid), t.tgenabled),
                  ',' ORDER BY c.relname, t.tgname)
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal),
          (SELECT string_agg(format('%s(%s) %s', p.proname,
                  pg_get_function_identity_arguments(p.oid), md5(p.prosrc)), ','
                  ORDER BY p.proname, pg_get_function_identity_arguments(p.oid))
             FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns)),
          (SELECT string_agg(format('%s %s %s %s %s %s', s.sequencename, s.start_value,
                  s.min_value, s.increment_by, s.cycle, s.last_value), ',' ORDER BY s.sequencename)
             FROM pg_sequences s WHERE s.schemaname = $1)
        )
        """,
        schema,
    )
    return str(text).replace(schema, "<schema>")


async def migration_log(conn: asyncpg.Connection, schema: str) -> list[tuple[int, str, int]]:
    rows = await conn.fetch(
        f'SELECT version, description, applied FROM "{schema}".schema_migrations ORDER BY 1'
    )
    return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]


async def fingerprint(conn: asyncpg.Connection, schema: str) -> str:
    """A digest of the catalog and the migration log: equal to the one taken right after the
    schema was migrated when a test changed neither."""
    seen = f"{await catalog(conn, schema)}\n{await migration_log(conn, schema)}"
    return hashlib.sha256(seen.encode()).hexdigest()


async def _tables(conn: asyncpg.Connection, schema: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
        schema,
    )
    return [str(r[0]) for r in rows]


async def rows_left(conn: asyncpg.Connection, schema: str) -> int:
    """Rows in every table of `schema` but schema_migrations, summed (one statement)."""
    tables = [t for t in await _tables(conn, schema) if t != "schema_migrations"]
    counts = " + ".join(f'(SELECT count(*) FROM "{schema}"."{t}")' for t in tables)
    return int(await conn.fetchval(f"SELECT {counts}"))


async def migrate_new(conn: asyncpg.Connection) -> tuple[str, str]:
    """A new schema with every migration applied: (name, fingerprint)."""
    name = _new_name()
    await conn.execute(f"CREATE SCHEMA {name}")
    await conn.execute(f"SET search_path = {name}")
    try:
        await pg_schema.migrate(conn)
    finally:
        await conn.execute("RESET search_path")
    return name, await fingerprint(conn, name)


async def reset(conn: asyncpg.Connection, schema: str) -> None:
    """Every row of `schema` but the migration log deleted, every sequence back at its start.

    session_replication_role = replica turns off user triggers (deleting messages would write
    account_message_counts rows) and the foreign-key triggers (so the order does not matter);
    it needs a superuser, which the test server's postgres user is."""
    tables = [t for t in await _tables(conn, schema) if t != "schema_migrations"]
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(";".join(f'DELETE FROM "{schema}"."{t}"' for t in tables))
        await conn.execute(
            "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value,"
            " false) FROM pg_sequences WHERE schemaname = $1",
            schema,
        )


async def _quiet(conn: asyncpg.Connection) -> bool:
    """No client connection but `conn` on the database (the test's servers' pools, listeners
    and advisory-lock holders all gone), waiting a little for closed ones to leave."""
    deadline = time.monotonic() + QUIET_WAIT_SECONDS
    while True:
        others = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        if not others:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)


async def give_back(conn: asyncpg.Connection, url: str, schema: str, fresh_print: str) -> bool:
    """Reset `schema` and return it to the pool when provably clean, else drop it; True when
    it went back."""
    clean = False
    with contextlib.suppress(asyncpg.PostgresError):
        if await _quiet(conn):
            await reset(conn, schema)
            clean = (
                await rows_left(conn, schema) == 0
                and await fingerprint(conn, schema) == fresh_print
            )
    if clean:
        pool(url).free.append((schema, fresh_print))
        return True
    pool(url).dropped += 1
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return False


@contextlib.asynccontextmanager
async def lease(url: str, fresh: bool = False) -> AsyncIterator[str]:
    """A schema for one test: migrated and empty from the pool, or (`fresh`) new and empty."""
    admin = await asyncpg.connect(url)
    try:
        if fresh:
            name = _new_name()
            await admin.execute(f"CREATE SCHEMA {name}")
            try:
                yield name
            finally:
                await admin.execute(f"DROP SCHEMA {name} CASCADE")
            return
        free = pool(url).free
        if free:
            name, fresh_print = free.pop()
            pool(url).reused += 1
        else:
            name, fresh_print = await migrate_new(admin)
        try:
            yield name
        finally:
            await give_back(admin, url, name, fresh_print)
    finally:
        await admin.close()
