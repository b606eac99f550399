"""The long-poll wake-up contract: a pull that registered (prepare) before looking at the store
is woken by a notify that comes after the look, whatever other pulls of the same device do
meanwhile (an abandoned poll of the same agent timing out is the usual case)."""

from __future__ import annotations

import asyncio

from server.core.notifier import WorkNotifier


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
