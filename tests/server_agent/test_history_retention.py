"""The server prunes the status history by itself: its background job (one server of a cluster
runs it; tests/store/test_app_pg.py runs this over PostgreSQL) deletes the history of messages
settled longer ago than the retention, and leaves newer ones and the messages alone."""

from __future__ import annotations

import asyncio

from simhive.server.background import BACKGROUND
from simhive.server.core.dates import US, now_us
from simhive.server.core.history import HistoryPruner, HistorySettings
from simhive.server.core.models import NewMessage
from simhive.server.core.status import Status
from tests.server_agent.conftest import Env, Servers, eventually

DAY = 86_400 * US


async def settled_message(env: Env, at: int, *, prunable: bool = False) -> int:
    """A message taken by the device and then cancelled, both at `at`: two history rows.

    With `prunable`, the server's own pruner may delete them as soon as they are written (it
    runs every 0.1 s here), so they are not counted: the same path writes both rows of a
    message inside the retention, whose count the test checks."""
    store = env.gw.store
    new = NewMessage(env.account.id, env.device_id, "+4915752982212", "hi", sim=0)
    [sms_id] = await store.insert_metered([new], at, None, [])
    # The lease ends in the future, or the lease sweeper could hand the message back first.
    lease = await store.lease_due(env.device_id, 1, f"lease-{at}", at, now_us() + DAY)
    assert [m.id for m in lease.messages] == [sms_id]
    await store.cancel_message(env.account.id, sms_id, at + 1)
    if not prunable:
        assert len(await store.message_history(sms_id)) == 2
    return sms_id


async def test_the_background_job_prunes_history_past_the_retention(servers: Servers) -> None:
    servers.history = HistorySettings(keep_days=2, interval_seconds=0.1)
    env = await servers.start()
    assert env.app[BACKGROUND].pruner is not None
    old = await settled_message(env, now_us() - 3 * DAY, prunable=True)
    fresh = await settled_message(env, now_us() - 1 * DAY)

    async def pruned() -> bool:
        return await env.gw.store.message_history(old) == []

    await eventually(pruned, "the history pruner")
    assert [h.status for h in await env.gw.store.message_history(fresh)] == [
        Status.TAKEN, Status.CANCELLED]  # fmt: skip
    kept = await env.gw.store.message_by_id(env.account.id, old)
    assert kept is not None and kept.status == Status.CANCELLED


async def test_a_retention_of_zero_days_keeps_history_for_ever(servers: Servers) -> None:
    servers.history = HistorySettings(keep_days=0, interval_seconds=0.1)
    env = await servers.start()
    old = await settled_message(env, now_us() - 3650 * DAY)
    assert await HistoryPruner(env.gw.store, servers.history).prune() == 0
    await asyncio.sleep(0.3)  # the server's own job has run meanwhile, and kept it too
    assert len(await env.gw.store.message_history(old)) == 2
    # the same message under a retention of ten years less a day goes, in batches of one
    pruner = HistoryPruner(env.gw.store, HistorySettings(keep_days=3649, batch=1))
    assert await pruner.prune() == 2
    assert await env.gw.store.message_history(old) == []
