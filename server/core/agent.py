"""The agent protocol's use cases (docs/agent-protocol.md): what a host agent may do with its
device token, and nothing beyond its own device.

Pull is a long poll: it registers with the work notifier before looking for due messages, so an
`addsms` for the device that lands while the agent waits answers the poll at once, and it wakes
on its own when a scheduled message (or an expiring lease) becomes due.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from server.core import device_events, security
from server.core.dates import US, iso, now_us
from server.core.errors import AuthError
from server.core.models import Device, DeviceFacts, IncomingMessage, Lease, ReportEvent, Sim
from server.core.notifier import WorkNotifier
from server.store.base import Store

log = logging.getLogger("simhive.agent")


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """What `hello` tells agents (defaults as in docs/agent-protocol.md)."""

    pull_max: int = 15
    lease_seconds: int = 120
    long_poll_seconds: int = 25
    sim_min_interval_seconds: int = 10
    sim_per_minute: int | None = 6
    sim_per_hour: int | None = 100
    sim_per_day: int | None = 500


class AgentService:
    def __init__(
        self,
        store: Store,
        notifier: WorkNotifier,
        clock: Callable[[], int] = now_us,
        settings: AgentSettings | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.settings = settings or AgentSettings()

    async def authenticate(self, token: str | None) -> Device:
        if not token:
            raise AuthError("missing device token")
        device = await self.store.device_by_token_hash(security.hash_token(token))
        if device is None or not security.token_matches(token, device.token_hash):
            raise AuthError("unknown device token")
        return device

    async def hello(
        self, device: Device, facts: DeviceFacts, sims: Sequence[Sim] | None
    ) -> dict[str, Any]:
        now = self.clock()
        await self.store.update_device_facts(device.id, facts, sims, now)
        slots = sorted({s.slot for s in sims or ()} | {0, 1})
        s = self.settings
        per_sim: dict[str, int | None] = {
            "min_interval_seconds": s.sim_min_interval_seconds,
            "per_minute": s.sim_per_minute,
            "per_hour": s.sim_per_hour,
            "per_day": s.sim_per_day,
        }
        delays = (device.delaybetweenrequest, device.delaybetweeneachsms)
        # The operator's per-device values (`simhive-server device set`) win over the defaults;
        # read fresh, because the Device record may come from a cache.
        own = await self.store.device_agent_settings(device.id)
        if own is not None:
            per_sim = {
                "min_interval_seconds": own.sim_min_interval,
                "per_minute": own.sim_per_minute,
                "per_hour": own.sim_per_hour,
                "per_day": own.sim_per_day,
            }
            delays = (own.delaybetweenrequest, own.delaybetweeneachsms)
        return {
            "device_id": device.id,
            "server_time": iso(now),
            "settings": {
                "delaybetweenrequest": delays[0],
                "delaybetweeneachsms": delays[1],
                "pull_max": s.pull_max,
                "lease_seconds": s.lease_seconds,
                "long_poll_seconds": s.long_poll_seconds,
                "sims": {str(slot): dict(per_sim) for slot in slots},
            },
        }

    async def pull(self, device: Device, max_messages: int, wait: float) -> Lease | None:
        """Lease up to max_messages due messages, holding the call up to `wait` seconds."""
        wait = max(0.0, min(wait, float(self.settings.long_poll_seconds)))
        deadline = time.monotonic() + wait
        await self.store.touch_device(device.id, self.clock())
        while True:
            self.notifier.prepare(device.id)  # before looking, so no notify is missed
            now = self.clock()
            due, next_at = await self.store.due_state(device.id, now)
            if due:
                lease = await self.store.lease_due(
                    device.id,
                    max_messages,
                    secrets.token_hex(16),
                    now,
                    now + self.settings.lease_seconds * US,
                )
                if lease.messages:
                    return lease
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.notifier.closed:
                return None
            if next_at is not None:
                remaining = min(remaining, max(0.0, (next_at - now) / US) + 0.001)
            await self.notifier.wait(device.id, remaining)

    async def commit(
        self, device: Device, lease_id: str, ids: Sequence[int]
    ) -> tuple[list[int], list[int]]:
        return await self.store.commit_lease(device.id, lease_id, ids, self.clock())

    async def report(self, device: Device, events: Sequence[ReportEvent]) -> list[str]:
        return await self.store.apply_events(device.id, events, self.clock())

    async def incoming(
        self, device: Device, messages: Sequence[IncomingMessage]
    ) -> list[tuple[str, int]]:
        return await self.store.store_incoming(device.account_id, device.id, messages, self.clock())

    async def status(
        self, device: Device, sims: Sequence[Sim] | None, events: Sequence[dict[str, Any]]
    ) -> None:
        now = self.clock()
        await self.store.replace_sims(device.id, sims, now)
        # Kept for operators (`simhive-server device events`), not only logged.
        await self.store.add_device_events(
            device.id, [device_events.from_agent(e, now) for e in events], now
        )
        for event in events:
            log.info(
                "device %d: %s %s %s",
                device.id,
                str(event.get("kind", "?"))[:40],
                str(event.get("state", ""))[:40],
                str(event.get("reason", ""))[:200],
            )
