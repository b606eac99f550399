"""The native API's store (native_base.NativeStore) on SQLite and PostgreSQL alike (conftest's
`engine`): API keys, quotas counted in the storing transaction (also under concurrency), status
history, validity, cancel, message views, groups and templates."""

from __future__ import annotations

import asyncio

import pytest

from simhive.server.core.errors import AlreadyExists, Conflict, NotFound
from simhive.server.core.models import MessageFilter, NewMessage
from simhive.server.core.native_models import MessageQuery, Meter, NewApiKey, QuotaExceeded
from simhive.server.core.status import Status
from simhive.server.store.base import Store
from tests.store.conftest import Raw

NUMBER = "+4915752982212"


async def _owner(store: Store, email: str = "a@example.com") -> tuple[int, int]:
    account = await store.create_account(email, "x", f"h-{email}", "UTC", 1)
    device = await store.create_device(account.id, "dev", f"d-{email}", 1)
    return account.id, device.id


def _key(account_id: int, name: str, key_hash: str) -> NewApiKey:
    return NewApiKey(account_id, name, key_hash, key_hash[:8], ("send", "read"), True, 60, 5, None)


def _msgs(account_id: int, device_id: int, n: int, body: str = "hi") -> list[NewMessage]:
    return [NewMessage(account_id, device_id, NUMBER, f"{body}{i}", sim=1) for i in range(n)]


async def test_api_keys(store: Store) -> None:
    account_id, _ = await _owner(store)
    made = await store.create_api_key(_key(account_id, "shop", "hash-1"), 10)
    assert (made.scopes, made.allow_get_send, made.daily_quota) == (("send", "read"), True, 5)
    with pytest.raises(AlreadyExists):
        await store.create_api_key(_key(account_id, "shop", "hash-2"), 11)
    found = await store.api_key_by_hash("hash-1")
    assert found is not None and found[0] == made and found[1].id == account_id
    assert await store.api_key_by_hash("hash-x") is None
    await store.touch_api_key(made.id, 20)
    [listed] = await store.list_api_keys(account_id)
    assert listed.last_used == 20
    revoked = await store.revoke_api_key(account_id, made.id, 30)
    assert revoked.revoked == 30 and revoked.name == "shop"
    assert await store.api_key_by_hash("hash-1") is None
    with pytest.raises(NotFound):
        await store.revoke_api_key(account_id, made.id, 31)
    again = await store.create_api_key(_key(account_id, "shop", "hash-2"), 40)  # name free again
    assert [k.id for k in await store.list_api_keys(account_id)] == [made.id, again.id]


async def test_quota_refuses_whole_sends_and_stores_nothing(store: Store) -> None:
    account_id, device_id = await _owner(store)
    assert await store.account_quota(account_id) == (None, None)
    await store.set_account_quota(account_id, 3, None)
    await store.set_account_quota(account_id, 3, 100)
    assert await store.account_quota(account_id) == (3, 100)
    meters = [Meter(account_id, 0, "d:2026-12-06", 3), Meter(account_id, 7, "d:2026-12-06", None)]
    ids = await store.insert_metered(_msgs(account_id, device_id, 2), 5, None, meters)
    assert len(ids) == 2 and ids == sorted(ids)
    with pytest.raises(QuotaExceeded) as refused:
        await store.insert_metered(_msgs(account_id, device_id, 2), 6, None, meters)
    assert refused.value.meter == meters[0] and refused.value.used == 2
    assert await store.count_messages(MessageFilter(account_id)) == 2
    assert await store.quota_used(account_id, 0, ["d:2026-12-06", "m:2026-12"]) == [2, 0]
    assert await store.quota_used(account_id, 7, ["d:2026-12-06"]) == [2]
    await store.insert_metered(_msgs(account_id, device_id, 1), 7, None, meters)
    assert await store.quota_used(account_id, 0, ["d:2026-12-06"]) == [3]
    bodies = [m.body for m in await store.list_messages(MessageFilter(account_id))]
    assert bodies == ["hi0", "hi1", "hi0"]


async def test_concurrent_sends_cannot_pass_a_quota_together(store: Store) -> None:
    account_id, device_id = await _owner(store)
    limit, tries = 10, 40
    # Two keys of one account: each send counts on the account's meter and its key's, which the
    # sends take in opposite orders here (the store must not deadlock or lose counts).
    account = Meter(account_id, 0, "m:2026-12", limit)

    async def one(i: int) -> bool:
        key = Meter(account_id, 1 + i % 2, "m:2026-12", None)
        meters = [account, key] if i % 2 else [key, account]
        try:
            await store.insert_metered(_msgs(account_id, device_id, 1, f"c{i}-"), i, None, meters)
        except QuotaExceeded:
            return False
        return True

    results = await asyncio.gather(*(one(i) for i in range(tries)))
    assert sum(results) == limit
    assert await store.count_messages(MessageFilter(account_id)) == limit
    assert await store.quota_used(account_id, 0, ["m:2026-12"]) == [limit]
    per_key = [(await store.quota_used(account_id, k, ["m:2026-12"]))[0] for k in (1, 2)]
    assert sum(per_key) == limit


async def test_validity_expiry_cancel_and_history(store: Store) -> None:
    account_id, device_id = await _owner(store)
    leased, cancelled, expiring = await store.insert_metered(
        _msgs(account_id, device_id, 3), 100, 200, []
    )
    await store.insert_metered(_msgs(account_id, device_id, 1), 100, 10_000, [])
    assert await store.valid_until(expiring) == 200
    assert await store.expire_messages(150) == 0
    # Cancel: a new message (nothing to wake); a leased one (its device to wake); not twice.
    assert await store.cancel_message(account_id, cancelled, 160) is None
    lease = await store.lease_due(device_id, 1, "lease-1", 170, 10_000)
    assert [m.id for m in lease.messages] == [leased]
    assert await store.cancel_message(account_id, leased, 180) == device_id
    with pytest.raises(Conflict) as conflict:
        await store.cancel_message(account_id, cancelled, 190)
    assert conflict.value.details == {"status": Status.CANCELLED}
    with pytest.raises(NotFound):
        await store.cancel_message(account_id + 1, expiring, 190)
    # Only `expiring` (status 1, valid until 200) expires at 300; the later validity does not.
    assert await store.expire_messages(300) == 1
    stored = await store.message_by_id(account_id, expiring)
    assert stored is not None and stored.status == Status.EXPIRED
    history = await store.message_history(expiring)
    assert [(h.status, h.at, h.code) for h in history] == [(Status.EXPIRED, 300, "expired")]
    assert [(h.status, h.at) for h in await store.message_history(leased)] == [
        (Status.TAKEN, 170),
        (Status.CANCELLED, 180),
    ]
    assert await store.message_parts(leased) == []


async def test_query_messages_and_sim_loads(store: Store) -> None:
    account_id, device_id = await _owner(store)
    other_id, other_device = await _owner(store, "b@example.com")
    ids = await store.insert_messages(_msgs(account_id, device_id, 5), 1000)
    await store.insert_messages(
        [NewMessage(account_id, device_id, "+4915752982213", "x", sim=2)], 2000
    )
    await store.insert_messages(_msgs(other_id, other_device, 2), 1000)
    page = await store.query_messages(MessageQuery(account_id, limit=3))
    assert [m.id for m in page][1:] == [ids[4], ids[3]] and page[0].sendto == "+4915752982213"
    after = await store.query_messages(MessageQuery(account_id, before=page[-1].id, limit=10))
    assert [m.id for m in after] == [ids[2], ids[1], ids[0]]
    assert len(await store.query_messages(MessageQuery(account_id, number=NUMBER))) == 5
    assert len(await store.query_messages(MessageQuery(account_id, sim=2))) == 1
    assert len(await store.query_messages(MessageQuery(account_id, created_from=1500))) == 1
    assert await store.query_messages(MessageQuery(account_id, direction="in")) == []
    assert await store.query_messages(MessageQuery(account_id, status=Status.SENT)) == []
    loads = await store.sim_loads(device_id, 0)
    assert [(s.slot, s.queued, s.sent_today, s.failed_today) for s in loads] == [
        (1, 5, 0, 0),
        (2, 1, 0, 0),
    ]


async def test_groups_and_contacts(store: Store, raw: Raw) -> None:
    account_id, _ = await _owner(store)
    group_id = await store.create_tag(account_id, "team", 1)
    ids, skipped = await store.add_contacts(
        account_id, group_id, [(NUMBER, "Ann"), ("+4915752982213", None), (NUMBER, "again")], 2
    )
    assert len(ids) == 2 and ids == sorted(ids) and skipped == 1
    # Concurrent adds of the same phones keep each phone once in the group.
    phones = [(f"+49157529822{i:02d}", None) for i in range(20, 40)]
    added = await asyncio.gather(
        *(store.add_contacts(account_id, group_id, phones, 3) for _ in range(4))
    )
    assert sum(len(a) for a, _ in added) == 20 and sum(s for _, s in added) == 60
    group = await store.group_by_id(account_id, group_id)
    assert group is not None and (group.name, group.contacts) == ("team", 22)
    first = await store.list_contacts(account_id, group_id, 0, 2)
    assert [(c.phone, c.name) for c in first] == [(NUMBER, "Ann"), ("+4915752982213", None)]
    rest = await store.list_contacts(account_id, group_id, first[-1].id, 100)
    assert len(rest) == 20
    await store.delete_contact(account_id, group_id, first[0].id)
    with pytest.raises(NotFound):
        await store.delete_contact(account_id, group_id, first[0].id)
    await store.rename_group(account_id, group_id, "crew")
    assert [(g.name, g.contacts) for g in await store.list_groups(account_id)] == [("crew", 21)]
    with pytest.raises(NotFound):
        await store.rename_group(account_id + 1, group_id, "theirs")
    with pytest.raises(NotFound):
        await store.add_contacts(account_id + 1, group_id, [(NUMBER, None)], 4)
    await store.delete_group(account_id, group_id)
    assert await store.group_by_id(account_id, group_id) is None
    assert await raw.value("SELECT COUNT(*) FROM contacts") == 0


async def test_templates(store: Store) -> None:
    account_id, _ = await _owner(store)
    hello = await store.create_template(account_id, "hello", "Hi {name}", 1)
    await store.create_template(account_id, "Zed", "z", 2)
    await store.create_template(account_id, "bye", "Bye", 3)
    with pytest.raises(AlreadyExists):
        await store.create_template(account_id, "hello", "again", 4)
    assert [t.name for t in await store.list_templates(account_id)] == ["Zed", "bye", "hello"]
    with pytest.raises(AlreadyExists):
        await store.update_template(account_id, hello.id, "bye", "x", 5)
    updated = await store.update_template(account_id, hello.id, "hi", "Hello {name}", 6)
    assert (updated.created, updated.updated, updated.variables) == (1, 6, ["name"])
    assert await store.template_by_id(account_id, hello.id) == updated
    assert await store.template_by_id(account_id + 1, hello.id) is None
    with pytest.raises(NotFound):
        await store.update_template(account_id + 1, hello.id, "x", "y", 7)
    await store.delete_template(account_id, hello.id)
    with pytest.raises(NotFound):
        await store.delete_template(account_id, hello.id)
