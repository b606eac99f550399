"""The reused PostgreSQL schemas of the tests (schema_pool.py) are as fresh ones: a schema with a
row in every table, read sequences and a store's workload behind it, once reset, has no rows,
hands out the same next identity values and has the same catalog and migration versions as a
schema migrated now; one a test changed or still has a connection on is dropped, not reused."""

from __future__ import annotations

import asyncpg
import pytest

from simhive.server.core.models import MessageFilter, NewMessage
from simhive.server.store import pg_schema
from simhive.server.store.pg import PgStore
from tests.store import schema_pool

# A value of each column type the migrations use, for a row in every table.
_VALUES = {
    "bigint": "1",
    "integer": "1",
    "smallint": "1",
    "text": "'x'",
    "boolean": "true",
    "double precision": "1",
    "real": "1",
    "bytea": "'\\x00'",
    "jsonb": "'{}'",
}


async def _fill_every_table(conn: asyncpg.Connection, schema: str) -> None:
    """One row in each table (foreign keys and triggers off), identity columns from their
    sequences, so every sequence has been read."""
    columns = await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = $1 AND is_identity = 'NO' AND is_generated = 'NEVER'"
        " AND (column_default IS NULL OR column_default NOT LIKE 'nextval%')"
        " ORDER BY table_name, ordinal_position",
        schema,
    )
    by_table: dict[str, list[tuple[str, str]]] = {}
    for table in await schema_pool._tables(conn, schema):
        by_table[table] = []
    for r in columns:
        if r["table_name"] in by_table:
            by_table[r["table_name"]].append((r["column_name"], r["data_type"]))
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        for table, cols in by_table.items():
            if table == "schema_migrations":
                continue
            names = ", ".join(f'"{c}"' for c, _ in cols)
            values = ", ".join(_VALUES[t] for _, t in cols)
            await conn.execute(f'INSERT INTO "{schema}"."{table}" ({names}) VALUES ({values})')
    for (seq,) in await conn.fetch(
        "SELECT sequencename FROM pg_sequences WHERE schemaname = $1", schema
    ):
        await conn.execute(f'SELECT nextval(\'"{schema}"."{seq}"\')')


async def _workload(url: str, schema: str) -> None:
    """A server's writes: accounts, a device, messages (the counting triggers), a read; its
    LISTEN connection and pool open until close()."""
    store = PgStore(url, schema=schema)
    await store.open()
    try:
        account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
        device = await store.create_device(account.id, "d", "t", 1)
        await store.insert_messages(
            [NewMessage(account.id, device.id, "+4915752982212", f"m{i}") for i in range(20)], 1
        )
        assert await store.count_messages(MessageFilter(account.id)) == 20
    finally:
        await store.close()


async def _next_ids(conn: asyncpg.Connection, schema: str) -> dict[str, int]:
    """The next value of every sequence (taken: the schema is not reused after this)."""
    rows = await conn.fetch(
        "SELECT sequencename FROM pg_sequences WHERE schemaname = $1 ORDER BY 1", schema
    )
    return {
        str(seq): int(await conn.fetchval(f'SELECT nextval(\'"{schema}"."{seq}"\')'))
        for (seq,) in rows
    }


async def test_a_reset_schema_equals_a_freshly_migrated_one(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        used, fresh_print = await schema_pool.migrate_new(conn)
        await _workload(pg_url, used)
        await _fill_every_table(conn, used)
        tables = await schema_pool._tables(conn, used)
        for table in tables:
            if table != "schema_migrations":
                assert await conn.fetchval(f'SELECT count(*) FROM "{used}"."{table}"'), table
        assert await schema_pool.fingerprint(conn, used) != fresh_print  # sequences were read

        assert await schema_pool.give_back(conn, pg_url, used, fresh_print)
        assert schema_pool.pool(pg_url).free[-1] == (used, fresh_print)
        schema_pool.pool(pg_url).free.pop()  # this test consumes it below

        fresh, _ = await schema_pool.migrate_new(conn)
        assert await schema_pool.rows_left(conn, used) == 0
        assert await schema_pool.catalog(conn, used) == await schema_pool.catalog(conn, fresh)
        log = [(v, d) for v, d, _ in await schema_pool.migration_log(conn, used)]
        assert log == [(v, d) for v, d, _ in await schema_pool.migration_log(conn, fresh)]
        assert log[-1][0] == pg_schema.LATEST_VERSION
        assert len(tables) > 30  # every table of the schema took part, not a few
        next_used, next_fresh = await _next_ids(conn, used), await _next_ids(conn, fresh)
        assert next_used == next_fresh and next_used and set(next_used.values()) == {1}
        for name in (used, fresh):
            await conn.execute(f"DROP SCHEMA {name} CASCADE")
    finally:
        await conn.close()


async def test_a_schema_given_back_is_the_next_one_lent(pg_url: str) -> None:
    async with schema_pool.lease(pg_url) as first:
        await _workload(pg_url, first)
    async with schema_pool.lease(pg_url) as second:
        assert second == first
        conn = await asyncpg.connect(pg_url)
        try:
            assert await schema_pool.rows_left(conn, second) == 0
        finally:
            await conn.close()
        await _workload(pg_url, second)  # the same ids again: account 1, device 1
    async with schema_pool.lease(pg_url, fresh=True) as new:
        assert new != first
        conn = await asyncpg.connect(pg_url)
        try:  # new and empty: not even the migration log
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = $1",
                    new,
                )
                == 0
            )
        finally:
            await conn.close()


async def _gone(conn: asyncpg.Connection, schema: str) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)


async def test_a_schema_whose_catalog_changed_is_dropped(pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        name, fresh_print = await schema_pool.migrate_new(conn)
        await conn.execute(f"ALTER TABLE {name}.messages ADD COLUMN extra TEXT")
        before = len(schema_pool.pool(pg_url).free)
        assert not await schema_pool.give_back(conn, pg_url, name, fresh_print)
        assert len(schema_pool.pool(pg_url).free) == before and await _gone(conn, name)

        name, fresh_print = await schema_pool.migrate_new(conn)  # a trigger turned off
        await conn.execute(f"ALTER TABLE {name}.messages DISABLE TRIGGER USER")
        assert not await schema_pool.give_back(conn, pg_url, name, fresh_print)
        assert await _gone(conn, name)

        name, fresh_print = await schema_pool.migrate_new(conn)  # a migration undone
        await conn.execute(
            f"DELETE FROM {name}.schema_migrations WHERE version = {pg_schema.LATEST_VERSION}"
        )
        assert not await schema_pool.give_back(conn, pg_url, name, fresh_print)
        assert await _gone(conn, name)
    finally:
        await conn.close()


async def test_a_schema_with_a_connection_left_on_it_is_dropped(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server the test did not stop: its listener and advisory lock would reach the next test.
    monkeypatch.setattr(schema_pool, "QUIET_WAIT_SECONDS", 0.2)
    conn = await asyncpg.connect(pg_url)
    try:
        name, fresh_print = await schema_pool.migrate_new(conn)
        left = await asyncpg.connect(pg_url, server_settings={"search_path": name})
        try:
            await left.execute(f'LISTEN "simhive_{name}"')
            await left.execute("SELECT pg_advisory_lock(42)")
            assert not await schema_pool.give_back(conn, pg_url, name, fresh_print)
            assert await _gone(conn, name)
        finally:
            await left.close()
    finally:
        await conn.close()
