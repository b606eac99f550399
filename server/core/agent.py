"""The agent protocol's use cases (docs/agent-protocol.md): what a host agent may do with its
device token, and nothing beyond its own device.

Pull is a long poll: it registers with the work notifier before looking for due messages, so an
`addsms` for the device that lands while the agent waits answers the poll at once, and it wakes
on its own when a scheduled message (or an expiring lease) becomes due.

A lease must never go to an agent that is no longer there: it would sit at status 2 until the
lease expires (`lease_seconds`) while the agent, reconnected, waits for it. So a pull whose client
is gone leases nothing, and a lease taken for a client that cannot receive it any more is handed
back at once (its id cleared, so a late commit of it is rejected). Only a lease whose answer went
out but was never committed waits for its expiry, because the server cannot know whether it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from simhive.server.core import device_events, limits, security
from simhive.server.core.dates import US, iso, now_us
from simhive.server.core.errors import AuthError, Conflict
from simhive.server.core.models import Device, DeviceFacts, IncomingMessage, Lease, ReportEvent, Sim
from simhive.server.core.notifier import WorkNotifier
from simhive.server.core.pools import SimOffer
from simhive.server.store.agent_base import DeviceEvent
from simhive.server.store.base import Store

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
    # A SIM gets pool work only while its device's agent was seen within this time: past it
    # the agent is taken for gone, and its pools' messages leave on other SIMs.
    agent_offline_seconds: int = 60


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
        # The newest pull of each device; an older one still parked is ended (see `pull`).
        self._newest: dict[int, object] = {}
        self._background: set[asyncio.Task[None]] = set()
        # Device tokens that authenticated, briefly (limits.TOKEN_CACHE_SECONDS, as for account
        # tokens): every agent request needs its device, and the store round trip was about a
        # tenth of the server's CPU per SMS at 64 modems. A token reset by the admin CLI (another
        # process) is refused at most that much later; an unknown token is never cached.
        self._auth_cache: dict[str, tuple[float, Device]] = {}
        self.monotonic: Callable[[], float] = time.monotonic

    def forget_device(self, device_id: int | None) -> None:
        """Drop the cached tokens of a device whose token was reset or that was deleted in this
        process (None: of every device); Gateway.device_token_listeners calls it."""
        if device_id is None:
            self._auth_cache.clear()
            return
        for digest, (_, device) in list(self._auth_cache.items()):
            if device.id == device_id:
                del self._auth_cache[digest]

    async def authenticate(self, token: str | None) -> Device:
        if not token:
            raise AuthError("missing device token")
        digest = security.hash_token(token)
        now = self.monotonic()
        cached = self._auth_cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        device = await self.store.device_by_token_hash(digest)
        if device is None or not security.token_matches(token, device.token_hash):
            self._auth_cache.pop(digest, None)
            raise AuthError("unknown device token")
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        self._auth_cache[digest] = (now + limits.TOKEN_CACHE_SECONDS, device)
        return device

    async def still_valid(self, token: str | None) -> bool:
        """After a request failed in the store: is its device token still good? The token may
        have come from the cache while another process deleted the device (or reset its token),
        and then the failure was the store refusing rows of a device that is gone. Drops the
        cached token and asks the store afresh; a store still failing counts as valid (the
        request's own error stands)."""
        if not token:
            return False
        self._auth_cache.pop(security.hash_token(token), None)
        try:
            await self.authenticate(token)
        except AuthError:
            return False
        except Exception:
            return True
        return True

    async def hello(
        self, device: Device, facts: DeviceFacts, sims: Sequence[Sim] | None
    ) -> dict[str, Any]:
        now = self.clock()
        sims, changes = await self._balances(device, sims, now)
        await self.store.update_device_facts(device.id, facts, sims, now)
        await self._balance_events(device, changes, now)
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

    async def pull(
        self,
        device: Device,
        max_messages: int,
        wait: float,
        *,
        gone: Callable[[], bool] = lambda: False,
        holding: Sequence[str] | None = None,
        sims: Sequence[SimOffer] | None = None,
    ) -> Lease | None:
        """Lease up to max_messages due messages, holding the call up to `wait` seconds.

        `gone()` tells whether the client has gone away; the wait itself ends by cancellation
        (the server runs aiohttp with handler_cancellation). `holding`, when given, lists the
        leases the agent still means to commit; its other uncommitted leases go back at once.
        `sims`, when given, says which SIMs are ready and how much room each has: the lease is
        then per SIM and binds pool messages (docs/routing.md); without it the device's pinned
        messages are leased as before pools.
        Raises Conflict when a newer pull of the same device replaces this one.
        """
        wait = max(0.0, min(wait, float(self.settings.long_poll_seconds)))
        deadline = time.monotonic() + wait
        me = object()
        # A device has one agent, and that agent one pull in flight; an older pull still parked
        # belongs to a connection that died silently (a NAT forgot it) and must not take
        # messages the live one is waiting for. A second agent with the same token gets 409s.
        if self._newest.get(device.id) is not None:
            self.notifier.notify(device.id)
        self._newest[device.id] = me
        try:
            if sims is None:
                await self.store.touch_device(device.id, self.clock())
            else:
                await self.store.offer_sims(device.id, sims, self.clock())
            if holding is not None:
                released = await self.store.release_leases(device.id, self.clock(), keep=holding)
                if released:
                    self.notifier.notify(device.id)
                    log.info("device %d: %d message(s) of unheld leases back", device.id, released)
            while True:
                self.notifier.prepare(device.id)  # before looking, so no notify is missed
                if self._newest.get(device.id) is not me:
                    raise Conflict("a newer pull of this device replaced this one")
                if gone():
                    return None
                now = self.clock()
                if sims is None:
                    due, next_at = await self.store.due_state(device.id, now)
                else:
                    due, next_at = await self.store.due_state_sims(
                        device.id, device.account_id, sims, now
                    )
                if due and not gone():
                    # A client that leaves from here on is the caller's to notice when it writes
                    # the answer (hand_back), or ours if it cancels the call (`_lease`).
                    lease = await self._lease(device.id, max_messages, now, sims)
                    if lease.messages:
                        return lease
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.notifier.closed:
                    return None
                if next_at is not None:
                    remaining = min(remaining, max(0.0, (next_at - now) / US) + 0.001)
                await self.notifier.wait(device.id, remaining)
        finally:
            if self._newest.get(device.id) is me:
                del self._newest[device.id]

    async def _lease(
        self, device_id: int, max_messages: int, now: int, sims: Sequence[SimOffer] | None
    ) -> Lease:
        lease_id = secrets.token_hex(16)
        expires = now + self.settings.lease_seconds * US
        leasing = asyncio.ensure_future(
            self._take(device_id, max_messages, lease_id, now, expires, sims)
        )
        try:
            return await asyncio.shield(leasing)
        except asyncio.CancelledError:
            # The client went away (aiohttp cancels the handler) while the store was leasing:
            # the lease is written anyway, and nobody will receive it.
            self._spawn(self._hand_back_after(leasing, device_id, lease_id))
            raise

    async def _take(
        self,
        device_id: int,
        max_messages: int,
        lease_id: str,
        now: int,
        expires: int,
        sims: Sequence[SimOffer] | None,
    ) -> Lease:
        if sims is None:
            return await self.store.lease_due(device_id, max_messages, lease_id, now, expires)
        seen_after = now - self.settings.agent_offline_seconds * US
        lease, wake = await self.store.lease_sims(
            device_id, sims, max_messages, lease_id, now, expires, seen_after, random.random
        )
        for other in wake:  # pool messages are still waiting: other SIMs of the pools may take them
            self.notifier.notify(other)
        return lease

    async def release(
        self, device: Device, ids: Sequence[int], reason: str
    ) -> tuple[list[int], list[int]]:
        """The agent hands back messages it has not started (docs/agent-protocol.md): pool
        messages go back to their pool and leave on another SIM; pinned ones stay."""
        now = self.clock()
        released, kept, wake = await self.store.release_messages(device.id, ids, now)
        for other in wake:
            self.notifier.notify(other)
        if released:
            log.info("device %d: %d message(s) handed back (%s)", device.id, len(released),
                     reason[:200] or "no reason given")  # fmt: skip
            why = f"{len(released)} message(s) handed back: {reason[:150]}"
            event = {"at": iso(now), "kind": "pool", "state": "released", "reason": why}
            await self.store.add_device_events(
                device.id, [device_events.from_agent(event, now)], now
            )
        return released, kept

    def hand_back(self, device_id: int, lease_id: str, why: str) -> None:
        """Return a lease whose answer could not be delivered to the queue, now (in the
        background, so it also works from a cancelled request)."""
        self._spawn(self._release(device_id, lease_id, why))

    async def _hand_back_after(
        self, leasing: asyncio.Future[Lease], device_id: int, lease_id: str
    ) -> None:
        with contextlib.suppress(Exception):
            await leasing  # a failed lease op leased nothing; the release below is then a no-op
        await self._release(device_id, lease_id, "client gone while leasing")

    async def _release(self, device_id: int, lease_id: str, why: str) -> None:
        try:
            released = await self.store.release_leases(
                device_id, self.clock(), lease_ids=[lease_id]
            )
        except Exception as exc:  # the lease then expires after lease_seconds as before
            log.error("device %d: could not hand back lease %s: %s", device_id, lease_id[:8], exc)
            return
        if released:
            log.info("device %d: %d message(s) of lease %s handed back (%s)", device_id,
                     released, lease_id[:8], why)  # fmt: skip
            self.notifier.notify(device_id)  # another pull of the device may take them

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)  # keep a reference until done: the loop holds only a weak one
        task.add_done_callback(self._background.discard)

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
        sims, changes = await self._balances(device, sims, now)
        await self.store.replace_sims(device.id, sims, now)
        # Kept for operators (`simhive-server device events`), not only logged.
        await self.store.add_device_events(
            device.id, [device_events.from_agent(e, now) for e in events], now
        )
        await self._balance_events(device, changes, now)
        for event in events:
            log.info(
                "device %d: %s %s %s",
                device.id,
                str(event.get("kind", "?"))[:40],
                str(event.get("state", ""))[:40],
                str(event.get("reason", ""))[:200],
            )

    async def _balances(
        self, device: Device, sims: Sequence[Sim] | None, now: int
    ) -> tuple[Sequence[Sim] | None, list[DeviceEvent]]:
        """The SIMs to store (last known balances kept) and the balance events they bring."""
        if sims is None:
            return None, []
        old = (await self.store.sims_of([device.id])).get(device.id, [])
        kept = device_events.with_balances(old, sims)
        return kept, device_events.balance_changes(old, kept, now)

    async def _balance_events(self, device: Device, events: list[DeviceEvent], now: int) -> None:
        if not events:
            return
        await self.store.add_device_events(device.id, events, now)
        for e in events:
            level = logging.WARNING if e.state == "low" else logging.INFO
            log.log(level, "device %d: %s", device.id, e.reason)
