"""Returns expired, uncommitted leases to the queue on a timer.

A pull already does this for its own device before leasing; the sweeper covers devices whose agent
went away after a pull (crashed between pull and commit), so their messages show status 1 again
in getsmsstatus and any other long-polling pull for the device is woken to take them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from simhive.server.core.dates import now_us
from simhive.server.core.notifier import WorkNotifier
from simhive.server.store.agent_base import AgentExtrasStore
from simhive.server.store.base import StoreError

log = logging.getLogger("simhive.leases")


class LeaseSweeper:
    def __init__(
        self,
        store: AgentExtrasStore,
        notifier: WorkNotifier,
        *,
        interval_seconds: float = 5.0,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.interval_seconds = interval_seconds
        self.clock = clock

    async def sweep(self) -> set[int]:
        devices = await self.store.expire_leases(self.clock())
        for device_id in devices:
            self.notifier.notify(device_id)
        if devices:
            log.info("expired leases returned to the queue for device(s) %s", sorted(devices))
        return devices

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except StoreError as exc:
                log.error("lease sweep failed: %s", exc)
            except Exception:  # a bug must not end sweeping for the life of the server
                log.exception("lease sweep failed")
            await asyncio.sleep(self.interval_seconds)
