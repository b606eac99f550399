"""Device status for account webhooks: announces when a device's agent connects (a request after
it was offline) and disconnects (no request for `offline_seconds`, and no long poll open), with a
reason, as Fonnte's device-status webhook does. A small background job: each tick compares every
watched device's state with the one it last announced, and writes the change and its outbox row
in one transaction. It watches only devices of accounts with a device-status URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from simhive.server.core.dates import US, iso, now_us
from simhive.server.store.base import Store, StoreError

log = logging.getLogger("simhive.webhooks")


class DeviceWatch:
    def __init__(
        self,
        store: Store,
        *,
        offline_seconds: float,
        interval_seconds: float = 2.0,
        clock: Callable[[], int] = now_us,
        on_change: Callable[[], None] = lambda: None,
        waiting: Callable[[int], bool] = lambda device_id: False,
    ) -> None:
        self.store = store
        self.offline_seconds = offline_seconds
        self.interval_seconds = interval_seconds
        self.clock = clock
        self.on_change = on_change
        # An open long poll is an agent that is there, however long ago its request started.
        self.waiting = waiting

    async def tick(self) -> int:
        """Announce every change; returns how many."""
        now = self.clock()
        changes = 0
        for device, announced, url in await self.store.watched_devices():
            seen = device.lastseen
            connected = self.waiting(device.id) or (
                seen is not None and now - seen <= self.offline_seconds * US
            )
            if announced is None and not connected:
                # never announced and not there: remember it, nothing changed for the receiver
                await self.store.record_connection(device, False, now, None, None)
                continue
            if announced == connected:
                continue
            reason = await self._reason(device.id, connected, seen, now)
            body = json.dumps({
                "event": "device.status", "device_id": device.id, "device": device.title,
                "status": "connect" if connected else "disconnect", "reason": reason,
                "timestamp": iso(now), "last_seen": iso(seen),
            })  # fmt: skip
            await self.store.record_connection(device, connected, now, url, body)
            changes += 1
        if changes:
            self.on_change()
        return changes

    async def _reason(self, device_id: int, connected: bool, seen: int | None, now: int) -> str:
        if connected:
            return "the agent is making requests again"
        quiet = int((now - seen) / US) if seen is not None else 0
        reason = f"no request from the agent for {quiet} s"
        events = await self.store.device_events(device_id, 1)
        if events and events[-1].kind == "modem" and events[-1].state != "connected":
            last = events[-1]
            reason += f"; last modem event: {last.state} {last.reason}".rstrip()
        return reason

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except StoreError as exc:
                log.error("device watch: %s", exc)
            except Exception:  # a bug must not end the watch for the life of the server
                log.exception("device watch failed")
            await asyncio.sleep(self.interval_seconds)
