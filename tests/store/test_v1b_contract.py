"""The native API's campaign, enrollment, one-time code and account webhook storage, the same on
SQLite and PostgreSQL (each test runs on both; the /api/v1 suites over PostgreSQL are in
test_api_v1_pg.py). The races go through three stores on one database, as three servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from simhive.server.core.campaign_models import CampaignRecipient, NewCampaign
from simhive.server.core.errors import AlreadyExists, Conflict
from simhive.server.core.models import IncomingMessage, NewMessage
from simhive.server.store.account_webhooks_base import AccountHooks
from simhive.server.store.base import Store
from tests.store.conftest import Raw
from tests.store.test_contract import _tables
from tests.store.test_delete_contract import SCHEMA_TABLES

MAX = 5


@pytest.fixture
async def servers(make_store: Any) -> AsyncIterator[list[Store]]:
    # SQLite: three stores on one file serialise through its write lock, as three processes.
    stores: list[Store] = [make_store() for _ in range(3)]
    for s in stores:
        await s.open()
    yield stores
    for s in stores:
        await s.close()


async def test_concurrent_guesses_through_three_stores_count_each_once(
    servers: list[Store],
) -> None:
    first = servers[0]
    account = await first.create_account("a@example.com", "x", "h", "UTC", 1)
    assert await first.otp_issue(account.id, "delete_device", 7, "digest", 10, 10**9, 60) is None
    tries = await asyncio.gather(
        *(servers[i % 3].otp_try(account.id, "delete_device", 7, 20, MAX) for i in range(30))
    )
    # Every try is counted before it is compared: exactly MAX may go ahead, whatever the store.
    assert sorted(t.attempts for t in tries if t.state == "ok") == list(range(1, MAX + 1))
    assert [t.state for t in tries].count("locked") == 30 - MAX
    # A code is used once, even when two stores try to use it together.
    used = await asyncio.gather(
        *(s.otp_use(account.id, "delete_device", 7, "digest") for s in servers)
    )
    assert used.count(True) == 1


async def test_resend_wait_and_phone(store: Store) -> None:
    account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
    assert await store.otp_issue(account.id, "verify_phone", 49, "d1", 100, 500, 1000) is None
    assert await store.otp_issue(account.id, "verify_phone", 49, "d2", 200, 600, 1000) == 1100
    await store.set_account_phone(account.id, "+49157", 5)
    await store.verify_account_phone(account.id, "+49157", 6)
    phone = await store.account_phone(account.id)
    assert phone is not None and (phone.number, phone.verified) == ("+49157", 6)
    await store.set_account_phone(account.id, "+49158", 7)  # another number: not verified
    phone = await store.account_phone(account.id)
    assert phone is not None and (phone.number, phone.verified) == ("+49158", None)


async def test_an_enrollment_code_works_once_across_stores(servers: list[Store]) -> None:
    first = servers[0]
    account = await first.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await first.create_device(account.id, "box", "t", 1)
    await first.create_enrollment("code", account.id, device.id, "sealed", 100, 1)
    got = await asyncio.gather(*(s.redeem_enrollment("code", 50) for s in servers))
    assert [g for g in got if g is not None] == [(device.id, "sealed")] and got.count(None) == 2
    await first.create_enrollment("late", account.id, device.id, "sealed", 100, 1)
    assert await first.redeem_enrollment("late", 101) is None  # expired


async def test_campaign_rows_states_and_counts(store: Store) -> None:
    account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await store.create_device(account.id, "box", "t", 1)
    new = NewCampaign(account.id, 0, "spring", "hi {name}", None, {"name": "x"}, "all", None,
                      None, "normal", None, None, (3,))  # fmt: skip
    recipients = [CampaignRecipient(i, f"+4915750000{i:02d}", {"name": f"n{i}"}) for i in range(3)]
    refused = [(CampaignRecipient(3, "junk", {}), "invalid_number")]
    made = await store.create_campaign(new, recipients, refused, 10)
    assert (made.state, made.recipients, made.variables, made.group_ids) == (
        "scheduled",
        4,
        {"name": "x"},
        (3,),
    )
    with pytest.raises(AlreadyExists):
        await store.create_campaign(new, recipients, refused, 11)
    assert [c.id for c in await store.list_campaigns(account.id, None, None)] == [made.id]
    assert [c.id for c in await store.campaigns_to_run(20)] == [made.id]
    with pytest.raises(Conflict):
        await store.set_campaign_state(account.id, made.id, ["paused"], "running", 21)
    batch = await store.campaign_batch(made.id, 2)
    assert [(r.index, r.variables) for r in batch] == [(0, {"name": "n0"}), (1, {"name": "n1"})]
    ids = await store.insert_messages(
        [NewMessage(account.id, device.id, r.number, "hi") for r in batch], 30
    )
    await store.record_released(made.id, [(0, ids[0], None), (1, ids[1], None)])
    assert sorted(await store.campaign_inflight(made.id)) == sorted(ids)
    counts = await store.campaign_counts(made.id)
    assert (counts.pending, counts.queued, counts.failed) == (1, 2, 1)
    paused = await store.set_campaign_state(account.id, made.id, ["running"], "paused", 40, "x")
    assert (paused.state, paused.reason, paused.started) == ("paused", "x", 20)


async def test_account_webhook_rows_from_triggers(store: Store) -> None:
    account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
    device = await store.create_device(account.id, "box", "t", 1)
    await store.set_account_webhooks(
        account.id, AccountHooks("http://127.0.0.1:9/s", "http://127.0.0.1:9/i", None, "k"), 2
    )
    await store.set_account_webhooks(
        account.id, AccountHooks("http://127.0.0.1:9/s2", None, "http://127.0.0.1:9/d", "k2"), 3
    )
    hooks = await store.account_webhooks(account.id)
    assert hooks == AccountHooks("http://127.0.0.1:9/s2", None, "http://127.0.0.1:9/d", "k2")
    await store.record_connection(device, True, 50, "http://127.0.0.1:9/d", '{"connected":1}')
    await store.record_connection(device, True, 50, "http://127.0.0.1:9/d", '{"connected":1}')
    watched = await store.watched_devices()
    assert [(d.id, connected) for d, connected, _ in watched] == [(device.id, True)]
    due = await store.due_account_webhooks(60, 10)
    assert [(j.kind, j.body, j.secret) for j in due] == [("device", '{"connected":1}', "k2")]
    await store.account_webhook_failed(due[0].id, "refused", 70, 61)
    assert await store.due_account_webhooks(65, 10) == []
    await store.account_webhook_failed(due[0].id, "refused again", None, 71)  # given up
    rows = await store.account_webhook_rows(account.id)
    assert [(r["state"], r["attempts"], r["last_error"]) for r in rows] == [
        ("dead", 2, "refused again")
    ]
    assert await store.prune_account_webhooks(10**9) == 1


async def test_deletes_take_campaigns_codes_and_account_webhooks(
    store: Store, raw: Raw, engine: str
) -> None:
    await store.create_account("keeper@example.com", "x", "h-keeper", "UTC", 1)
    account = await store.create_account("a@example.com", "x", "h", "UTC", 1)
    a = account.id
    one = await store.create_device(a, "one", "d1", 1)
    two = await store.create_device(a, "two", "d2", 1)
    hook = "http://127.0.0.1:9/h"
    await store.set_account_webhooks(a, AccountHooks(hook, hook, hook, "k"), 2)
    await store.store_incoming(a, one.id, [IncomingMessage("k1", 0, "+49157", "in")], 3)
    ids = await store.insert_messages([NewMessage(a, one.id, "+49157", "out")], 3)
    new = NewCampaign(a, 0, "c", "hi", None, {}, "all", None, None, "normal", None, None, ())
    made = await store.create_campaign(new, [CampaignRecipient(0, "+49157", {})], [], 4)
    await store.record_released(made.id, [(0, ids[0], None)])
    for device in (one, two):
        await store.create_enrollment(f"c{device.id}", a, device.id, "s", 100, 5)
        await store.otp_issue(a, "delete_device", device.id, "x", 5, 100, 60)
        await store.record_connection(device, True, 6 + device.id, hook, "{}")
    await store.set_account_phone(a, "+49157", 7)
    await store.otp_issue(a, "verify_phone", 49157, "x", 7, 100, 60)

    assert (
        await raw.value("SELECT COUNT(*) FROM account_webhook_outbox WHERE sms_id IS NOT NULL") == 1
    )
    assert await raw.value("SELECT COUNT(*) FROM device_connection") == 2
    await store.delete_device(one.id, 10)
    by_device = "SELECT COUNT(*) FROM {} WHERE device_id = " + str(one.id)
    assert await raw.value(by_device.format("enrollment_codes")) == 0
    assert await raw.value(by_device.format("device_connection")) == 0
    assert await raw.value(f"SELECT COUNT(*) FROM otp_codes WHERE target = {one.id}") == 0
    # Its message's incoming webhook went with the message; device two's rows stay.
    assert (
        await raw.value("SELECT COUNT(*) FROM account_webhook_outbox WHERE sms_id IS NOT NULL") == 0
    )
    assert (
        await raw.value(by_device.replace(str(one.id), str(two.id)).format("enrollment_codes")) == 1
    )
    assert (await store.campaign_counts(made.id)).queued == 0  # its message is gone

    await store.delete_account(a, 11)
    left: dict[str, int] = {}
    for table in await _tables(raw, engine) - SCHEMA_TABLES:
        n = await raw.value(f"SELECT COUNT(*) FROM {table}")
        if n:
            left[table] = n
    assert left == {"accounts": 1, "account_tokens": 1}
