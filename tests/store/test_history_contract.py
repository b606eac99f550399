"""Retention of the status history (message_history) on SQLite and PostgreSQL alike: a message
whose last change is older than the cutoff loses its whole history, in batches; one still
changing keeps all of it; a deleted message takes its history along at once (a trigger, whatever
deletes it), and rows left by messages deleted before that trigger existed are pruned too."""

from __future__ import annotations

import sqlite3

import asyncpg

from simhive.server.core.native_models import StatusChange
from simhive.server.core.status import Status
from simhive.server.store.base import Store
from simhive.server.store.sqlite import SqliteStore
from tests.store.conftest import Raw
from tests.store.test_native_contract import _msgs, _owner


async def execute(raw: Raw, sql: str) -> None:
    """A write behind the store's back (Raw only reads)."""
    if isinstance(raw.store, SqliteStore):
        with sqlite3.connect(raw.store.path) as conn:
            conn.execute(sql)
        return
    pg = await asyncpg.connect(raw.url, server_settings={"search_path": raw.schema})
    try:
        await pg.execute(sql)
    finally:
        await pg.close()


def steps(history: list[StatusChange]) -> list[tuple[int, int]]:
    return [(h.status, h.at) for h in history]


async def test_settled_messages_lose_their_history_in_batches(store: Store) -> None:
    account_id, device_id = await _owner(store)
    settled, changing, quick, recent = await store.insert_metered(
        _msgs(account_id, device_id, 4), 100, None, []
    )
    lease = await store.lease_due(device_id, 2, "lease-1", 170, 10_000)
    assert {m.id for m in lease.messages} == {settled, changing}
    await store.cancel_message(account_id, settled, 180)  # last change at 180
    await store.cancel_message(account_id, quick, 190)  # last change at 190
    await store.cancel_message(account_id, changing, 500)  # taken at 170, last change at 500
    await store.cancel_message(account_id, recent, 450)
    assert steps(await store.message_history(changing)) == [
        (Status.TAKEN, 170), (Status.CANCELLED, 500)]  # fmt: skip

    # One message per batch: the history of `settled` (2 rows) and of `quick` (1 row).
    first = await store.prune_message_history(400, 1)
    second = await store.prune_message_history(400, 1)
    assert sorted([first, second]) == [1, 2]
    assert await store.prune_message_history(400, 1) == 0
    assert await store.message_history(settled) == []
    assert await store.message_history(quick) == []
    # Older rows of a message that changed after the cutoff stay with it, and newer histories.
    assert steps(await store.message_history(changing)) == [
        (Status.TAKEN, 170), (Status.CANCELLED, 500)]  # fmt: skip
    assert steps(await store.message_history(recent)) == [(Status.CANCELLED, 450)]
    # The messages themselves stay, with their status and times.
    kept = await store.message_by_id(account_id, settled)
    assert kept is not None and kept.status == Status.CANCELLED
    # A later cutoff takes the rest.
    assert await store.prune_message_history(10_000, 100) == 3
    assert await store.message_history(changing) == []


async def test_a_deleted_message_takes_its_history_along(store: Store, raw: Raw) -> None:
    account_id, device_id = await _owner(store)
    gone, stays = await store.insert_metered(_msgs(account_id, device_id, 2), 100, None, [])
    await store.lease_due(device_id, 2, "lease-1", 170, 10_000)
    await store.cancel_message(account_id, gone, 180)
    # Whatever deletes a message (an SMPP cancel or expiry, a device delete, by hand).
    await execute(raw, f"DELETE FROM messages WHERE id = {gone}")
    assert await raw.value(f"SELECT COUNT(*) FROM message_history WHERE sms_id = {gone}") == 0
    assert steps(await store.message_history(stays)) == [(Status.TAKEN, 170)]


async def test_history_left_by_messages_deleted_earlier_is_pruned(store: Store, raw: Raw) -> None:
    account_id, device_id = await _owner(store)
    [kept] = await store.insert_metered(_msgs(account_id, device_id, 1), 100, None, [])
    await store.lease_due(device_id, 1, "lease-1", 300, 10_000)  # changes at 300: kept
    # Rows of a message deleted before the trigger existed (an older version of simhive).
    await execute(raw, "INSERT INTO message_history(sms_id, status, at) VALUES (987654, 6, 200)")
    await execute(raw, "INSERT INTO message_history(sms_id, status, at) VALUES (987654, 7, 250)")
    assert await store.prune_message_history(260, 100) == 2
    assert await raw.value("SELECT COUNT(*) FROM message_history") == 1
    assert steps(await store.message_history(kept)) == [(Status.TAKEN, 300)]
