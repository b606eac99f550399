"""Waiting between tries while the server is away."""

from __future__ import annotations

import random
from collections.abc import Callable

# The longest wait between tries while the server is away. A self-hosted server has a handful of
# agents, so a try every 7.5-15 s costs it nothing, while a 60 s ceiling kept new messages
# waiting up to a minute after a server restart (committed ones go out meanwhile regardless).
SERVER_BACKOFF_CAP = 15.0


class Backoff:
    """Exponential back-off with jitter, a random wait between half and all of each step (so
    many agents do not reconnect in lockstep)."""

    def __init__(
        self,
        base: float = 1.0,
        cap: float = SERVER_BACKOFF_CAP,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base = base
        self.cap = cap
        self._rand = rand
        self.failures = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.failures))
        self.failures = min(self.failures + 1, 30)
        return self._rand(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
