"""PostgreSQL migrations that index a table that exists already (pg_index_build.py): the build
lets other servers' writes go on, the version is recorded only once the index is valid, a build
killed half way is redone on the next run, and the catalog ends as a schema migrated from nothing.

The waits are on PostgreSQL's own state (pg_stat_activity), never on the clock; a writer that
would have to queue behind the migration is told so at once (LOCK ... NOWAIT)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from simhive.server.store import pg_schema
from simhive.server.store.pg_index_build import concurrently
from tests.store import schema_pool
from tests.support.pg import eventually as pg_eventually

WAIT = 60.0  # seconds: a bound for a state that must come, not a measure of speed

pytestmark = pytest.mark.fresh_schema

# Rows for every table the migrations index concurrently, in columns that exist at version 1
# (messages) and 13 (message_history).
MESSAGE_ROWS = """
INSERT INTO messages(account_id, device_id, sendto, body, status, created, due, status_changed,
                     lease_expires)
SELECT 1, 1, '+4915752982212', 'm' || g, 1 + g % 3, g, g, g, g FROM generate_series(1, 2000) g
"""
HISTORY_ROWS = """
INSERT INTO message_history(sms_id, status, at) SELECT g, 1 + g % 3, g
FROM generate_series(1, 2000) g
"""
WRITTEN = {  # that row and the other writer's
    "messages": "SELECT count(*) FROM messages WHERE body = 'during'",
    "message_history": "SELECT count(*) FROM message_history WHERE at = -5",
}
WRITE = {  # one row, written by the transaction the migration waits for and by another writer
    "messages": "INSERT INTO messages(account_id, device_id, sendto, body, created, due,"
    " status_changed) VALUES (1, 1, '+4915752982212', 'during', 5, 5, 5)",
    "message_history": "INSERT INTO message_history(sms_id, status, at) VALUES (1, 2, -5)",
}


@pytest.fixture
def engine() -> str:
    return "postgresql"


async def eventually(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
    return await pg_eventually(probe, what, WAIT)


@pytest.fixture
async def connect(pg_url: str, schema: str) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """New connections on the test's schema (or, `on_schema=False`, on none: catalog texts name
    other schemas than the search path's), each a server or client of its own; all terminated
    at the end, whatever they were doing."""
    opened: list[asyncpg.Connection] = []

    async def new(on_schema: bool = True) -> asyncpg.Connection:
        settings = {"search_path": schema} if on_schema else {}
        conn = await asyncpg.connect(pg_url, server_settings=settings)
        opened.append(conn)
        return conn

    yield new
    # Ended on the server too: a backend waiting for a lock does not notice its client leave,
    # and would hold what it has against the schema's DROP.
    pids = [conn.get_server_pid() for conn in opened]
    for conn in opened:
        conn.terminate()
    killer = await asyncpg.connect(pg_url)
    try:
        await killer.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids)
        gone = "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = ANY($1::int[]))"
        await eventually(lambda: killer.fetchval(gone, pids), "the test's sessions to end")
    finally:
        await killer.close()


async def at_version(
    conn: asyncpg.Connection, version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema as a server of `version` left it, with rows in the tables to index."""
    with monkeypatch.context() as patch:
        patch.setattr(pg_schema, "MIGRATIONS", [m for m in pg_schema.MIGRATIONS if m[0] <= version])
        assert await pg_schema.migrate(conn) == version
    await conn.execute(
        "INSERT INTO accounts(id, email, password_hash, created) VALUES (1, 'a@b.c', 'x', 1);"
        "INSERT INTO devices(id, account_id, title, token_hash, created) VALUES (1, 1, 'd', 't', 1)"
    )
    await conn.execute(MESSAGE_ROWS)
    if version >= 13:
        await conn.execute(HISTORY_ROWS)


async def waits_for_a_lock(admin: asyncpg.Connection, pid: int) -> bool:
    kind = await admin.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    return bool(kind == "Lock")


async def index_state(conn: asyncpg.Connection, name: str) -> tuple[int, bool] | None:
    """(oid, valid) of the schema's index `name`, None when there is none."""
    row = await conn.fetchrow(
        "SELECT c.oid, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
        name,
    )
    return None if row is None else (int(row[0]), bool(row[1]))


async def version(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT max(version) FROM schema_migrations"))


async def catalog_of_a_new_schema(plain: asyncpg.Connection) -> str:
    name, _ = await schema_pool.migrate_new(plain)
    try:
        return await schema_pool.catalog(plain, name)
    finally:
        await plain.execute(f"DROP SCHEMA {name} CASCADE")


# From 22: migration 23 (messages_device_leases). From 20: 21 (message_history_at) first. From
# 1: 2 and 4 (messages_lease_expiry, the getallsms filters) first.
@pytest.mark.parametrize(
    ("start", "table"), [(22, "messages"), (20, "message_history"), (1, "messages")]
)
async def test_writes_go_on_while_an_upgrade_indexes_their_table(
    connect: Callable[..., Awaitable[asyncpg.Connection]],
    schema: str,
    monkeypatch: pytest.MonkeyPatch,
    start: int,
    table: str,
) -> None:
    admin, writer, server, other_server, client = [await connect() for _ in range(5)]
    await at_version(admin, start, monkeypatch)
    # A write still open when the upgrade starts: the build has to wait for it.
    open_write = writer.transaction()
    await open_write.start()
    await writer.execute(WRITE[table])

    upgrade = asyncio.create_task(pg_schema.migrate(server))
    await eventually(lambda: waits_for_a_lock(admin, server.get_server_pid()), "the upgrade's wait")
    # A second server started now waits its turn (and does not deadlock with the build, which
    # waits for every older snapshot: a waiting pg_advisory_lock() call would be one).
    second = asyncio.create_task(pg_schema.migrate(other_server))

    async def asked_for_the_lock() -> bool:
        query = await admin.fetchval(
            "SELECT query FROM pg_stat_activity WHERE pid = $1", other_server.get_server_pid()
        )
        return "advisory_lock(" in str(query)

    await eventually(asked_for_the_lock, "the second server asking for the migration lock")

    # Another server's write to the table goes through now: it would have to queue behind a
    # plain CREATE INDEX's SHARE lock (and NOWAIT refuses to queue).
    async with client.transaction():
        await client.execute("SET LOCAL lock_timeout = '10s'")  # the test hangs on nothing
        await client.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE NOWAIT")
        await client.execute(WRITE[table])
    assert not upgrade.done() and await waits_for_a_lock(admin, server.get_server_pid())
    assert await version(admin) == start  # nothing recorded while an index is unfinished

    await open_write.commit()
    assert await upgrade == pg_schema.LATEST_VERSION
    assert await second == pg_schema.LATEST_VERSION
    assert await admin.fetchval(WRITTEN[table]) == 2
    # A database at the latest version: a server starting changes nothing.
    plain = await connect(on_schema=False)
    before = await schema_pool.fingerprint(plain, schema)
    assert await pg_schema.migrate(await connect()) == pg_schema.LATEST_VERSION
    assert await schema_pool.fingerprint(plain, schema) == before

    # Emptied (sequences back at their start, as the test schema pool does), the schema has
    # the same tables, indexes (definitions, all valid), constraints, triggers and functions as
    # one migrated from nothing: the pool's fingerprint and `db copy` see one schema.
    await schema_pool.reset(plain, schema)
    assert await schema_pool.catalog(plain, schema) == await catalog_of_a_new_schema(plain)
    log = await schema_pool.migration_log(plain, schema)
    assert [v for v, _, _ in log] == list(range(1, pg_schema.LATEST_VERSION + 1))


async def test_a_build_killed_half_way_is_redone_before_its_version_counts(
    connect: Callable[..., Awaitable[asyncpg.Connection]], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin, writer, server = [await connect() for _ in range(3)]
    await at_version(admin, 22, monkeypatch)
    open_write = writer.transaction()
    await open_write.start()
    await writer.execute(WRITE["messages"])
    upgrade = asyncio.create_task(pg_schema.migrate(server))
    await eventually(lambda: waits_for_a_lock(admin, server.get_server_pid()), "the upgrade's wait")
    # The server dies mid-build (kill -9, a lost connection: its session ends).
    await admin.execute("SELECT pg_terminate_backend($1)", server.get_server_pid())
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await upgrade
    await open_write.rollback()

    assert await version(admin) == 22
    left = await index_state(admin, "messages_device_leases")
    assert left is not None and left[1] is False, left  # what an interrupted build leaves

    assert await pg_schema.migrate(await connect()) == pg_schema.LATEST_VERSION
    rebuilt = await index_state(admin, "messages_device_leases")
    assert rebuilt is not None and rebuilt[1] is True
    assert rebuilt[0] != left[0]  # built again, not the leftover kept
    assert await version(admin) == pg_schema.LATEST_VERSION


async def test_an_index_built_by_a_run_that_died_before_recording_it_is_kept(
    connect: Callable[..., Awaitable[asyncpg.Connection]], monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await connect()
    await at_version(admin, 22, monkeypatch)
    # What a run leaves when it dies between the build and the commit of its version.
    await admin.execute(
        "CREATE INDEX CONCURRENTLY messages_device_leases ON messages(device_id, lease_expires)"
        " WHERE status = 2"
    )
    built = await index_state(admin, "messages_device_leases")
    assert await pg_schema.migrate(await connect()) == pg_schema.LATEST_VERSION
    assert await index_state(admin, "messages_device_leases") == built
    assert await version(admin) == pg_schema.LATEST_VERSION


def test_a_concurrent_build_is_one_create_index_statement() -> None:
    build = concurrently("CREATE UNIQUE INDEX a ON t(x) WHERE y = 1;")
    assert build.indexes[0].concurrent == "CREATE UNIQUE INDEX CONCURRENTLY a ON t(x) WHERE y = 1"
    for wrong in ("CREATE INDEX a ON t(x); DROP TABLE t", "CREATE TABLE a (x INTEGER)"):
        with pytest.raises(ValueError):
            concurrently(wrong)
