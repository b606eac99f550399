"""The store contract suite runs every test against both engines: `store` is a fresh SQLite file
or an empty, migrated PostgreSQL schema (one throwaway database per test session; the schemas
are reset and reused between tests, see schema_pool.py; `@pytest.mark.fresh_schema` asks for a
new, unmigrated one)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from simhive.server.store.base import Store
from simhive.server.store.pg import PgStore
from simhive.server.store.sqlite import SqliteStore
from tests.store import schema_pool
from tests.support.pg import PgServer, pg_server, scratch_database

ENGINES = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fresh_schema: the test needs a new, unmigrated PostgreSQL schema (it migrates or"
        " explains plans itself), not a reused one",
    )


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    with pg_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_url(pg: PgServer) -> Iterator[str]:
    """One database for the session's store tests; each test gets a schema in it."""
    with scratch_database(pg) as url:
        # Commits need not wait for the disk here (the tests never pull the plug), which makes
        # each test's migrations several times faster.
        yield f"{url}?synchronous_commit=off"


class Raw:
    """Plain SQL on the store's database, for what the interface does not show (tests only)."""

    def __init__(self, store: Store, url: str = "", schema: str = "") -> None:
        self.store = store
        self.url = url
        self.schema = schema

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if isinstance(self.store, SqliteStore):
            conn = sqlite3.connect(self.store.path)
            try:
                return [tuple(r) for r in conn.execute(sql)]
            finally:
                conn.close()
        pg = await asyncpg.connect(self.url, server_settings={"search_path": self.schema})
        try:
            return [tuple(r) for r in await pg.fetch(sql)]
        finally:
            await pg.close()

    async def value(self, sql: str) -> Any:
        return (await self.rows(sql))[0][0]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def schema(engine: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """An empty, migrated schema (PostgreSQL) for the test, reset and reused after it (a new,
    unmigrated one for `fresh_schema` tests); '' for SQLite."""
    if engine != "postgresql":
        yield ""
        return
    url = request.getfixturevalue("pg_url")
    async with schema_pool.lease(url, fresh=schema_pool.wants_fresh(request)) as name:
        yield name


@pytest.fixture
def make_store(engine: str, schema: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """A new (unopened) store on the test's database; several calls share it, like servers."""

    def make() -> Store:
        if engine == "sqlite":
            return SqliteStore(tmp_path / "db.sqlite3")
        return PgStore(request.getfixturevalue("pg_url"), schema=schema)

    return make


@pytest.fixture
async def store(make_store: Any) -> AsyncIterator[Store]:
    s: Store = make_store()
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def raw(store: Store, engine: str, schema: str, request: pytest.FixtureRequest) -> Raw:
    if engine == "sqlite":
        return Raw(store)
    return Raw(store, request.getfixturevalue("pg_url"), schema)


@pytest.fixture
async def pair(make_store: Any) -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one schema: two servers (the PostgreSQL modules set `engine`)."""
    a: Store = make_store()
    b: Store = make_store()
    await a.open()
    await b.open()
    yield a, b
    await b.close()
    await a.close()
