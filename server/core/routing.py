"""Where a message goes: pinned SIMs and pools, and the pool use cases every door calls.

`Routing.target` turns what a client asked for (a device and SIM, "any SIM of this device", or a
pool name) into what is stored: a pinned (device, slot) or a pool id. Pool records are cached for a
couple of seconds like devices (every pool addsms needs one), so a change made by the CLI on the
same database reaches a running server within that time.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simhive.server.core import limits
from simhive.server.core.agent import AgentSettings
from simhive.server.core.dates import US, now_us
from simhive.server.core.errors import InvalidInput, NotFound
from simhive.server.core.models import Account, NewMessage
from simhive.server.core.pools import (
    ACCOUNT_POOL,
    DEVICE_POOL_PREFIX,
    Pool,
    PoolSim,
    check_name,
    check_strategy,
    check_weight,
)
from simhive.server.store.base import Store

POOL_NOT_FOUND = "Pool not found"


@dataclass(frozen=True, slots=True)
class PoolInfo:
    """A pool as `pool show` and the APIs present it."""

    pool: Pool
    sims: list[PoolSim]
    waiting: int


class Routing:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], int] = now_us,
        offline_seconds: int = AgentSettings().agent_offline_seconds,
    ) -> None:
        self.store = store
        self.clock = clock
        self.offline_seconds = offline_seconds  # the server's --agent-offline-seconds
        # (account, name) -> (expiry, pool)
        self._cache: dict[tuple[int, str], tuple[float, Pool]] = {}

    async def pool_for_send(self, account: Account, name: str) -> Pool:
        """The pool a message names: `all`, `device:<id>` or a named one."""
        key = (account.id, name)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        pool = await self.pool(account, name)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + limits.TOKEN_CACHE_SECONDS, pool)
        return pool

    async def wake_for(self, messages: Sequence[NewMessage]) -> set[int]:
        """The devices to wake for new pool messages: for n messages of a pool, the n + 1
        devices whose SIMs offered the most pool room in their latest pull. Waking every device
        of a large pool for one message made them all queue a lease behind each other (the
        winner's answer waited for the rest); a woken device that cannot take a message wakes
        the others itself, and a SIM that gains room pulls again on its own."""
        counts = collections.Counter(m.pool_id for m in messages if m.pool_id is not None)
        seen_after = self.clock() - self.offline_seconds * US
        wake: set[int] = set()
        for pool_id, n in counts.items():
            wake |= await self.store.pool_wake_candidates(pool_id, seen_after, n + 1)
        return wake

    async def pool(self, account: Account, name: str) -> Pool:
        """Any pool of the account by name; the implicit ones are made on first use."""
        name = name.strip()
        if name == ACCOUNT_POOL:
            return await self.store.implicit_pool(account.id, None, self.clock())
        if name.startswith(DEVICE_POOL_PREFIX):
            device_id = _device_id(name)
            device = await self.store.device_by_id(device_id)
            if device is None or device.account_id != account.id:
                raise NotFound("Device not found")
            return await self.store.implicit_pool(account.id, device_id, self.clock())
        pool = await self.store.pool_by_name(account.id, name)
        if pool is None:
            raise NotFound(POOL_NOT_FOUND)
        return pool

    def forget(self, account: Account) -> None:
        """Drop cached pools of the account after a change made through this process."""
        for key in [k for k in self._cache if k[0] == account.id]:
            del self._cache[key]

    # -- pool administration (CLI today, the native API later) -----------------------------

    async def create(
        self, account: Account, name: str, strategy: str = "partial", sticky: bool = False
    ) -> Pool:
        return await self.store.create_pool(
            account.id, check_name(name), check_strategy(strategy), sticky, self.clock()
        )

    async def info(self, account: Account, name: str) -> PoolInfo:
        pool = await self.pool(account, name)
        return PoolInfo(
            pool, await self.store.pool_sims(pool.id), await self.store.pool_waiting(pool.id)
        )

    async def list(self, account: Account) -> list[Pool]:
        return await self.store.list_pools(account.id)

    async def update(
        self,
        account: Account,
        name: str,
        *,
        strategy: str | None = None,
        sticky: bool | None = None,
    ) -> Pool:
        pool = await self.pool(account, name)
        await self.store.update_pool(
            pool.id,
            strategy=None if strategy is None else check_strategy(strategy),
            sticky=sticky,
        )
        self.forget(account)
        return await self.pool(account, name)

    async def add_sim(
        self, account: Account, name: str, device_id: int, slot: int, weight: int = 1
    ) -> None:
        pool = await self._named(account, name)
        device = await self.store.device_by_id(device_id)
        if device is None or device.account_id != account.id:
            raise NotFound("Device not found")
        if slot not in (0, 1):
            raise InvalidInput(f"Unsupported sim {slot}: 0 (SIM 1) or 1 (SIM 2)")
        await self.store.set_pool_sim(pool.id, device_id, slot, check_weight(weight))
        self.forget(account)

    async def remove_sim(self, account: Account, name: str, device_id: int, slot: int) -> None:
        pool = await self._named(account, name)
        await self.store.remove_pool_sim(pool.id, device_id, slot)
        self.forget(account)

    async def delete(self, account: Account, name: str) -> None:
        pool = await self._named(account, name)
        await self.store.delete_pool(pool.id)
        self.forget(account)

    async def _named(self, account: Account, name: str) -> Pool:
        pool = await self.pool(account, name)
        if pool.kind != "named":
            raise InvalidInput(
                f"Pool {name!r} is implicit: its SIMs are those of the "
                + ("account" if pool.kind == "account" else "device")
            )
        return pool


def _device_id(name: str) -> int:
    text = name[len(DEVICE_POOL_PREFIX) :]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise NotFound(POOL_NOT_FOUND)
    return int(text)
