"""Deleting a device and an account with the native API's rows (keys, quotas and their usage,
templates, status history), on SQLite and PostgreSQL alike: nothing of the account is left.
test_delete_contract.py covers the rest of what a delete takes and the pool hand-back."""

from __future__ import annotations

from simhive.server.core.models import IncomingMessage, MessageFilter, NewMessage
from simhive.server.core.native_models import Meter, NewApiKey
from simhive.server.store.base import Store
from tests.store.conftest import Raw
from tests.store.test_contract import _tables
from tests.store.test_delete_contract import SCHEMA_TABLES

NUMBER = "+4915752982212"


async def _fill(store: Store, email: str) -> tuple[int, int, int]:
    account = await store.create_account(email, "x", f"h-{email}", "UTC", 1)
    a = account.id
    one = await store.create_device(a, "one", f"d1-{email}", 1)
    two = await store.create_device(a, "two", f"d2-{email}", 1)
    meters = [Meter(a, 0, "d:2026-12-06", 100)]
    await store.insert_metered(
        [NewMessage(a, one.id, NUMBER, f"m{i}") for i in range(3)], 2, 9, meters
    )
    await store.insert_messages([NewMessage(a, two.id, NUMBER, "two")], 2)
    await store.lease_due(one.id, 1, f"lease-{email}", 3, 100)  # a status change: history
    await store.store_incoming(a, one.id, [IncomingMessage("k1", 0, NUMBER, "in")], 4)
    await store.create_api_key(NewApiKey(a, "k", f"kh-{email}", "p", ("send",), False, 60, None,
                                         None), 5)  # fmt: skip
    await store.set_account_quota(a, 10, None)
    await store.create_template(a, "t", "body", 6)
    tag = await store.create_tag(a, "team", 7)
    await store.add_contacts(a, tag, [(NUMBER, "Ann")], 8)
    return a, one.id, two.id


async def test_delete_device_then_account_with_native_rows(
    store: Store, raw: Raw, engine: str
) -> None:
    await store.create_account("keeper@example.com", "x", "h-keeper", "UTC", 1)
    account_id, one, two = await _fill(store, "a@example.com")
    dry = await store.delete_device(one, 10, dry_run=True)
    assert dry == {"sims": 0, "messages": 4, "unsent_messages": 3, "incoming_messages": 1,
                   "messages_back_to_pool": 0}  # fmt: skip
    assert await store.count_messages(MessageFilter(account_id)) == 5
    assert await store.delete_device(one, 10) == dry
    assert await store.device_by_id(one) is None
    assert await store.count_messages(MessageFilter(account_id)) == 1
    assert await raw.value("SELECT COUNT(*) FROM message_history") == 0

    counts = await store.delete_account(account_id, 11)
    assert counts == {"devices": 1, "messages": 1, "unsent_messages": 1, "pools": 0, "tags": 1,
                      "contacts": 1}  # fmt: skip
    assert await store.account_by_id(account_id) is None and await store.device_by_id(two) is None
    left: dict[str, int] = {}
    for table in await _tables(raw, engine) - SCHEMA_TABLES:
        n = await raw.value(f"SELECT COUNT(*) FROM {table}")
        if n:
            left[table] = n
    assert left == {"accounts": 1, "account_tokens": 1}
