"""The web console's HTTP suite (tests/console/test_console_http.py) and the in-process /metrics
tests (tests/console/test_metrics.py) run again with the app on PostgreSQL: every page, form and
scrape through PgConsoleStore, each test in a schema of its own."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

import tests.console.test_console_http
import tests.console.test_metrics
from tests.console.test_console_http import console as console  # a fixture these tests use
from tests.support.testdb import AppDb

for _suite in (tests.console.test_console_http, tests.console.test_metrics):
    globals().update(
        {
            k: v
            for k, v in vars(_suite).items()
            # Those on the real gateway (`stack`, a SQLite file) and those without a store stay
            # there; every test of an app over `db` comes here.
            if k.startswith("test_") and {"db", "console"} & set(inspect.signature(v).parameters)
        }
    )


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[AppDb]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield AppDb(url=pg_url, schema=schema)
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
