"""The long-poll wake-up contract: a pull that registered (prepare) before looking at the store
is woken by a notify that comes after the look, whatever other pulls of the same device do
meanwhile (an abandoned poll of the same agent timing out is the usual case)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from simhive.server.core.gateway import Gateway
from simhive.server.core.models import NewMessage
from simhive.server.core.notifier import WorkNotifier
from simhive.server.store.base import Store


async def test_notify_after_prepare_wakes_the_next_wait() -> None:
    n = WorkNotifier()
    n.prepare(1)
    n.notify(1)  # work arrived between the store check and the wait
    assert await asyncio.wait_for(n.wait(1, 30), 5) is True


async def test_an_other_poll_ending_does_not_drop_a_prepared_registration() -> None:
    n = WorkNotifier()
    old = asyncio.create_task(n.wait(1, 0.05))  # a poll of the same device, about to time out
    await asyncio.sleep(0)
    n.prepare(1)  # the new poll registers, then looks at the store (an await) ...
    assert await old is False  # ... while the old poll times out and leaves
    n.notify(1)  # addsms stores work for the device
    # the new poll must be woken now, not after its own 30 s
    assert await asyncio.wait_for(n.wait(1, 30), 5) is True


async def test_a_cancelled_wait_leaves_no_waiter_behind() -> None:
    n = WorkNotifier()
    task = asyncio.create_task(n.wait(1, 30))
    await asyncio.sleep(0)
    assert n._waiters == {1: 1}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert n._waiters == {}
    n.notify(1)  # a later poll is still woken
    assert await asyncio.wait_for(n.wait(1, 30), 5) is True


class _SlowStore:
    """insert_messages that commits (the writer thread carries on) but answers only later."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.took = asyncio.Event()
        self.stored: list[NewMessage] = []

    async def insert_messages(
        self, messages: list[NewMessage], now: int, then: object = None, meters: object = ()
    ) -> list[int]:
        self.stored.extend(messages)
        self.took.set()
        await self.release.wait()
        return list(range(1, len(messages) + 1))


async def test_a_send_cancelled_after_the_store_took_it_still_wakes_the_pull() -> None:
    # aiohttp cancels the handler when the client hangs up; the rows may be committed already,
    # and the device's parked pull must hear of them now, not at the end of its 25 s poll.
    store = _SlowStore()
    n = WorkNotifier()
    gw = Gateway(cast(Store, store), n)
    n.prepare(7)
    msg = NewMessage(account_id=1, device_id=7, sendto="+4917012345678", body="hi")
    task = asyncio.create_task(gw._store_messages([msg], set()))
    await asyncio.wait_for(store.took.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.wait_for(n.wait(7, 30), 5) is True
