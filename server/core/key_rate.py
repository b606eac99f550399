"""The rate limit of each API key (docs/api.md, "API keys"): a token bucket of `rate`
requests per minute, holding at most `rate`, refilled evenly.

One interface, two homes, chosen by the store (Store.shares_limits):

- One server (SQLite): the buckets live in the process's memory. The check and the take happen in
  one synchronous step of the event loop, so requests arriving together cannot pass together.
- Several servers on one PostgreSQL database: the buckets live in the database
  (server/store/pg_logins.py), taken by one atomic upsert per request, so the limit holds for
  the key across every server, whichever server each request reaches. It costs one round trip
  per request and no disk flush.

Both read the time from `clock` (seconds); the database's buckets use the wall clock, as the
servers' monotonic clocks do not agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from simhive.server.core.errors import LimitReached
from simhive.server.core.native_models import ApiKey
from simhive.server.core.ratelimit import wait_text
from simhive.server.store.base import Store

# Buckets kept in memory at most; beyond, all are forgotten (which only ever gives rate back).
MAX_BUCKETS = 100_000


class KeyRate(Protocol):
    clock: Callable[[], float]

    async def take(self, key: ApiKey) -> None:
        """Take one request from the key's bucket, or raise LimitReached (rate_limited)."""


def refused(rate: int, retry: float) -> LimitReached:
    return LimitReached(
        f"Rate limit of this key ({rate} requests per minute) reached; try again in"
        f" {wait_text(retry)}",
        details={"limit_per_minute": rate},
        retry_after=retry,
    )


class MemoryKeyRate:
    """Token buckets of one process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key id -> (tokens, at)

    async def take(self, key: ApiKey) -> None:
        rate, now = key.rate_per_minute, self.clock()
        tokens, at = self._buckets.get(key.id, (float(rate), now))
        tokens = min(float(rate), tokens + (now - at) * rate / 60.0)
        if tokens < 1.0:
            self._buckets[key.id] = (tokens, now)
            raise refused(rate, (1.0 - tokens) * 60.0 / rate)
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.clear()
        self._buckets[key.id] = (tokens - 1.0, now)


class StoreKeyRate:
    """Token buckets in the database, shared by its servers (Store.rate_take)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def take(self, key: ApiKey) -> None:
        rate = key.rate_per_minute
        now = int(self.clock() * 1_000_000)
        taken, tokens = await self.store.rate_take(key.id, key.account_id, rate, now)
        if not taken:
            # The bucket as this request's snapshot saw it; a take by another server since can
            # make it look full, and then the longest wait for one token is the honest hint.
            short = 1.0 - tokens if tokens is not None and tokens < 1.0 else 1.0
            raise refused(rate, short * 60.0 / rate)


def key_rate_for(store: Store) -> KeyRate:
    """Where the store wants the buckets kept."""
    return StoreKeyRate(store) if store.shares_limits() else MemoryKeyRate()
