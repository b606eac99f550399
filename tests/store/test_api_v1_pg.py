"""The in-process /api/v1 suites (tests/server/test_api_v1_*.py: messages, keys and quotas,
groups, templates, pools and devices, campaigns, one-time codes and confirmed deletes, device
enrollment, account webhooks; and the compat API's quotas, tests/server/test_compat_quotas.py)
run again with the app over PostgreSQL, each test in a schema of its own (an empty migrated one
from tests/store/schema_pool.py). Their few raw-SQL
checks (row counts, stored key hashes) are pointed at that schema instead of the SQLite file."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest

import tests.server.test_api_v1_account_webhooks
import tests.server.test_api_v1_campaigns
import tests.server.test_api_v1_device_admin
import tests.server.test_api_v1_groups
import tests.server.test_api_v1_keys
import tests.server.test_api_v1_messages
import tests.server.test_api_v1_otp
import tests.server.test_api_v1_pools_devices
import tests.server.test_api_v1_templates
import tests.server.test_compat_quotas
from simhive.server.store.pg import PgStore
from tests.server._v1 import V1, started
from tests.server.test_api_v1_account_webhooks import receiver as receiver  # a fixture they use
from tests.store import schema_pool

for _suite in (tests.server.test_api_v1_groups, tests.server.test_api_v1_keys,
               tests.server.test_api_v1_messages, tests.server.test_api_v1_pools_devices,
               tests.server.test_api_v1_templates, tests.server.test_api_v1_campaigns,
               tests.server.test_api_v1_otp, tests.server.test_api_v1_device_admin,
               tests.server.test_api_v1_account_webhooks,
               tests.server.test_compat_quotas):  # fmt: skip
    # Only the tests that run an app (the `v1` fixture): the others do not touch a store.
    globals().update(
        {k: v for k, v in vars(_suite).items()
         if k.startswith("test_") and "v1" in inspect.signature(v).parameters}
    )  # fmt: skip
# The admin CLI's delete runs on the SQLite file it is given; on PostgreSQL the same core delete
# is tested by tests/store/test_delete_contract.py and the API's confirmed delete above.
del globals()["test_the_admin_cli_deletes_without_a_code"]


@pytest.fixture
async def v1(pg_url: str) -> AsyncIterator[V1]:
    async with (
        schema_pool.lease(pg_url) as schema,
        started(PgStore(pg_url, schema=schema)) as env,
    ):
        yield env


def _query(url: str, schema: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The suites' helpers are synchronous: run the query on a loop of its own in a thread (the
    app's loop is only paused while the test waits for it)."""
    numbered = iter(range(1, len(params) + 2))
    sql = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)

    async def run() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(url, server_settings={"search_path": schema})
        try:
            return [tuple(r) for r in await conn.fetch(sql, *params)]
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


@pytest.fixture(autouse=True)
def _raw_sql_on_postgres(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def schema_of(env: V1) -> str:
        store = env.gateway.store
        assert isinstance(store, PgStore) and store.schema is not None
        return store.schema

    def db(env: V1, sql: str, *params: Any) -> list[Any]:
        return _query(pg_url, schema_of(env), sql, params)

    def rows(env: V1, sql: str = "SELECT COUNT(*) FROM messages") -> Any:
        return _query(pg_url, schema_of(env), sql, ())[0][0]

    for suite in (tests.server.test_api_v1_keys, tests.server.test_api_v1_otp,
                  tests.server.test_api_v1_device_admin):  # fmt: skip
        monkeypatch.setattr(suite, "db", db)
    monkeypatch.setattr(tests.server.test_api_v1_messages, "rows", rows)
    yield
