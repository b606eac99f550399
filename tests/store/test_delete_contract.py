"""Deleting a device or an account, on SQLite and PostgreSQL alike: the counts a dry run gives,
taken pool work going back to its pool, and an account delete that leaves no row of the account
in any table (a table added later that refers to an account and is not in
server/store/delete_sql.py fails this test, on both engines)."""

from __future__ import annotations

import random

from simhive.server.core.models import DeviceFacts, IncomingMessage, Sim
from simhive.server.core.status import Status
from simhive.server.store.agent_base import DeviceEvent
from simhive.server.store.base import Store
from tests.store.conftest import Raw
from tests.store.test_agent_contract import NUMBER, T0, _offer, _owner, _send
from tests.store.test_contract import _tables

# Bookkeeping tables that belong to no account.
SCHEMA_TABLES = {
    "schema_migrations", "sqlite_sequence", "sqlite_stat1", "login_attempts", "login_pace"
}  # fmt: skip


async def _history(store: Store) -> tuple[int, list[int], dict[str, list[int]]]:
    """An account with two devices sharing its pool `all`, messages of every kind, and SIMs,
    events, an incoming SMS, a tag and a contact."""
    account_id, [a, b] = await _owner(store, 2)
    for dev in (a, b):
        await store.update_device_facts(dev, DeviceFacts(model="m"), [Sim(dev, 0)], T0)
        await store.add_device_events(dev, [DeviceEvent(T0, "modem", "up", slot=0)], T0)
    pool = await store.implicit_pool(account_id, None, T0)
    pooled = await _send(store, account_id, None, 1, pool_id=pool.id)
    await store.offer_sims(a, [_offer(0)], T0)
    lease, _ = await store.lease_sims(a, [_offer(0)], 10, "LA", T0, T0 + 100, T0 - 1, random.random)
    assert [m.id for m in lease.messages] == pooled  # taken by a, not committed
    own = await _send(store, account_id, a, 2)
    others = await _send(store, account_id, b, 1)
    await store.store_incoming(account_id, a, [IncomingMessage("k1", 0, NUMBER, "hi")], T0)
    tag = await store.create_tag(account_id, "friends", T0)
    await store.create_contact(account_id, tag, NUMBER, "Ann", T0)
    return account_id, [a, b], {"pooled": pooled, "own": own, "others": others}


async def test_device_delete_counts_then_deletes_and_hands_pool_work_back(store: Store) -> None:
    account_id, [a, b], ids = await _history(store)
    dry = await store.delete_device(a, T0 + 1, dry_run=True)
    assert dry == {"sims": 1, "messages": 3, "unsent_messages": 2, "incoming_messages": 1,
                   "messages_back_to_pool": 1}  # fmt: skip
    assert await store.device_by_id(a) is not None  # a dry run deletes nothing
    assert await store.delete_device(a, T0 + 1) == dry
    assert await store.device_by_id(a) is None
    back = await store.message_by_id(account_id, ids["pooled"][0])
    assert back is not None and back.status == Status.NEW and back.device_id is None
    for sms_id in ids["own"]:
        assert await store.message_by_id(account_id, sms_id) is None
    assert await store.message_by_id(account_id, ids["others"][0]) is not None
    assert (await store.sims_of([a])).get(a, []) == []
    assert await store.device_by_id(b) is not None


async def test_account_delete_leaves_nothing_of_the_account(
    store: Store, raw: Raw, engine: str
) -> None:
    account_id, _, _ = await _history(store)
    keeper = await store.create_account("keeper@example.com", "x", "h2", "UTC", 1)
    counts = await store.delete_account(account_id, T0 + 1)
    assert counts["devices"] == 2 and counts["messages"] == 5 and counts["contacts"] == 1
    left = {}
    for table in sorted(await _tables(raw, engine) - SCHEMA_TABLES):
        n = await raw.value(f"SELECT COUNT(*) FROM {table}")
        if n:
            left[table] = n
    assert left == {"accounts": 1, "account_tokens": 1}
    assert await store.account_by_id(keeper.id) is not None
