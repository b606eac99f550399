"""The web console's HTTP suites (tests/console/test_console_http.py, test_console_content.py,
test_console_account.py) and the in-process /metrics tests (tests/console/test_metrics.py) run
again with the app on PostgreSQL: every page, form and scrape through PgConsoleStore, each test
in a schema of its own (an empty migrated one from tests/store/schema_pool.py)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

import tests.console.test_console_account
import tests.console.test_console_content
import tests.console.test_console_http
import tests.console.test_metrics
from simhive.server.app import create_app
from simhive.server.console.base import COOKIE
from tests.console.test_console_http import Console, make_console
from tests.console.test_console_http import console as console  # a fixture these tests use
from tests.store import schema_pool
from tests.support.testdb import AppDb

for _suite in (
    tests.console.test_console_http,
    tests.console.test_console_content,
    tests.console.test_console_account,
    tests.console.test_metrics,
):
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
    async with schema_pool.lease(pg_url) as schema:
        yield AppDb(url=pg_url, schema=schema)


async def test_a_console_session_is_known_to_every_server(db: AppDb) -> None:
    """Two servers on one database: a login on A serves pages and forms on B, and a logout on B
    ends it on A too."""
    async for a in make_console(db):
        assert (await a.login()).status == 303
        cookie = a.client.session.cookie_jar.filter_cookies(a.client.make_url("/"))[COOKIE].value
        async with TestClient(TestServer(create_app(db.store()))) as other:
            b = Console(other, a.gw, a.account, a.device)
            other.session.cookie_jar.update_cookies({COOKIE: cookie})
            assert "Log out" in await b.page("/devices")
            location, _ = await b.post("/pools", {"name": "shared", "strategy": "full"})
            assert location == "/pools"
            assert "Pool shared created." in await a.page("/pools")  # the note, shown on A
            await b.post("/logout", {})
            assert (await a.client.get("/", allow_redirects=False)).status == 303
