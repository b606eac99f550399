"""Expires messages whose validity ran out before a SIM took them (status 21), on a timer.

Only status-1 messages expire: one a SIM has leased or committed may already be on its way, and
is never taken back. A lease that expires returns its messages to status 1, and the next sweep
expires those past their validity, so a message leaves at most `interval` late of its validity.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from simhive.server.core.dates import now_us
from simhive.server.store.base import StoreError
from simhive.server.store.native_base import NativeStore

log = logging.getLogger("simhive.server")


class ExpirySweeper:
    def __init__(
        self,
        store: NativeStore,
        *,
        interval_seconds: float = 1.0,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.interval_seconds = interval_seconds
        self.clock = clock

    async def sweep(self) -> int:
        expired = await self.store.expire_messages(self.clock())
        if expired:
            log.info("%d message(s) expired unsent (validity passed)", expired)
        return expired

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except StoreError as exc:
                log.error("expiry sweep failed: %s", exc)
            except Exception:  # a bug must not end sweeping for the life of the server
                log.exception("expiry sweep failed")
            await asyncio.sleep(self.interval_seconds)
