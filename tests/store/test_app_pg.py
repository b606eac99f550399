"""The in-process suites of the agent routes, SIM balances, pools, webhooks, deleted devices and
the status history's retention (tests/server_agent) run again with the app over PostgreSQL: the
core, the HTTP doors and the background jobs (lease sweeper, webhook sender, history pruner,
shared wake-ups) on the PostgreSQL store, each test in a schema of its own (an empty migrated one
from tests/store/schema_pool.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tests.server_agent.test_balance
import tests.server_agent.test_deleted_device_cache
import tests.server_agent.test_history_retention
import tests.server_agent.test_pools
import tests.server_agent.test_routes
import tests.server_agent.test_webhooks
from simhive.server.store.pg import PgStore
from tests.server_agent.conftest import Env, Servers
from tests.server_agent.conftest import receiver as receiver  # a fixture these tests use
from tests.store import schema_pool

for _suite in (tests.server_agent.test_balance, tests.server_agent.test_deleted_device_cache,
               tests.server_agent.test_history_retention, tests.server_agent.test_pools,
               tests.server_agent.test_routes, tests.server_agent.test_webhooks):  # fmt: skip
    globals().update({k: v for k, v in vars(_suite).items() if k.startswith("test_")})


@pytest.fixture
async def servers(tmp_path: Path, pg_url: str) -> AsyncIterator[Servers]:
    async with schema_pool.lease(pg_url) as schema:
        s = Servers(tmp_path / "unused.sqlite3", lambda: PgStore(pg_url, schema=schema))
        try:
            yield s
        finally:
            for client in s.clients:
                await client.close()


@pytest.fixture
async def env(servers: Servers) -> Env:
    return await servers.start()
