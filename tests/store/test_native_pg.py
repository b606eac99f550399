"""The native store with several servers on one PostgreSQL database: quotas hold across servers,
and a group's contacts added through two servers at once stay one per phone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from simhive.server.core.models import MessageFilter, NewMessage
from simhive.server.core.native_models import Meter, QuotaExceeded
from simhive.server.store.pg import PgStore


@pytest.fixture
def engine() -> str:
    return "postgresql"


@pytest.fixture
async def servers(make_store: Any) -> AsyncIterator[list[PgStore]]:
    """Three stores on one schema: three servers, each with its own connection pool."""
    stores: list[PgStore] = [make_store() for _ in range(3)]
    for s in stores:
        await s.open()
    yield stores
    for s in stores:
        await s.close()


async def test_a_quota_holds_across_servers(servers: list[PgStore]) -> None:
    first = servers[0]
    account = await first.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await first.create_device(account.id, "dev", "d", 1)
    limit = 25
    meters = [
        Meter(account.id, 0, "d:2026-12-06", limit),
        Meter(account.id, 3, "d:2026-12-06", None),
    ]

    async def send(i: int) -> int:
        store = servers[i % len(servers)]
        batch = [NewMessage(account.id, device.id, "+4915752982212", f"m{i}-{j}") for j in range(2)]
        try:
            await store.insert_metered(batch, i, None, meters)
        except QuotaExceeded:
            return 0
        return len(batch)

    stored = await asyncio.gather(*(send(i) for i in range(60)))  # 120 messages asked for
    # Sends of 2 against 25: twelve fit (24); every later one would pass the limit.
    assert sum(stored) == 24
    assert await first.count_messages(MessageFilter(account.id)) == 24
    assert await servers[1].quota_used(account.id, 0, ["d:2026-12-06"]) == [24]
    assert await servers[2].quota_used(account.id, 3, ["d:2026-12-06"]) == [24]


async def test_contacts_added_through_several_servers_at_once(servers: list[PgStore]) -> None:
    first = servers[0]
    account = await first.create_account("a@example.com", "x", "h", "UTC", 1)
    group = await first.create_tag(account.id, "team", 1)
    phones = [(f"+49157529822{i:02d}", None) for i in range(30)]
    added = await asyncio.gather(*(s.add_contacts(account.id, group, phones, 2) for s in servers))
    assert sorted(len(ids) for ids, _ in added) == [0, 0, 30]
    listed = await servers[1].list_contacts(account.id, group, 0, 100)
    assert sorted(c.phone for c in listed) == sorted(p for p, _ in phones)
