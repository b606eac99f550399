"""Retention of the status history (message_history): a message's history is deleted once its
last status change is older than `keep_days`, on a timer (one server of a cluster runs it,
background.py). The message itself stays, with its current status and its times (created,
sent, delivered); only the list of steps it took goes. A deleted message takes its history at
once (a trigger of the schema), so nothing here waits on messages that are gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from simhive.server.core.dates import US, now_us
from simhive.server.store.base import StoreError
from simhive.server.store.native_base import NativeStore

log = logging.getLogger("simhive.server")


@dataclass(frozen=True)
class HistorySettings:
    # Days a settled message keeps its status history; 0 keeps it for ever. Long enough to look
    # into any recent delivery question, short enough that the table (several rows per message)
    # does not outgrow the messages it describes.
    keep_days: int = 90
    # A prune run at start-up and then this often; each run deletes in batches of `batch`
    # messages, one short write transaction each, so other writes wait for one batch at most.
    interval_seconds: float = 3600.0
    batch: int = 2000


class HistoryPruner:
    def __init__(
        self,
        store: NativeStore,
        settings: HistorySettings,
        *,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    async def prune(self) -> int:
        """Delete every history due now; returns the rows deleted."""
        if self.settings.keep_days <= 0:
            return 0
        before = self.clock() - self.settings.keep_days * 86_400 * US
        total = 0
        while True:
            gone = await self.store.prune_message_history(before, self.settings.batch)
            total += gone
            if gone == 0:
                break
            await asyncio.sleep(0)  # between batches, let the server's own work run
        if total:
            log.info("status history: %d row(s) older than %d days pruned", total,
                     self.settings.keep_days)  # fmt: skip
        return total

    async def run(self) -> None:
        while True:
            try:
                await self.prune()
            except StoreError as exc:
                log.error("status history prune failed: %s", exc)
            except Exception:  # a bug must not end pruning for the life of the server
                log.exception("status history prune failed")
            await asyncio.sleep(self.settings.interval_seconds)
