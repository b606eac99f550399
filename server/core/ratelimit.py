"""Lockouts for repeated login failures (DESIGN.md section 4).

scrypt already makes each guess cost tens of milliseconds; this caps guesses per account and per
client address so that a password cannot be ground down from one place, or one account from many.
In-memory and per process: a restart forgets the counts, which only ever helps the user.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class FailureLimiter:
    """At most `max_failures` failures per key within `window` seconds; then the key is locked
    until its oldest counted failure leaves the window."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may try again; 0 when it is not locked."""
        now = self.clock()
        stamps = self._recent(key, now)
        if stamps is None or len(stamps) < self.max_failures:
            return 0.0
        return stamps[0] + self.window - now

    def failure(self, key: str) -> None:
        now = self.clock()
        stamps = self._recent(key, now)
        if stamps is None:
            if len(self._failures) >= self.max_keys:  # bounded memory under a spray of keys
                self._failures.pop(next(iter(self._failures)))
            stamps = self._failures[key] = deque()
        stamps.append(now)
        while len(stamps) > self.max_failures:
            stamps.popleft()

    def success(self, key: str) -> None:
        self._failures.pop(key, None)
