"""Per-SIM pacing: when may this SIM send its next message?

Rules (docs/agent.md, "Dispatching and pacing"):
- after a send, a random pause of 0..delaybetweeneachsms s, never less than the SIM's minimum
  interval (operators block machine-like traffic; the GSM radio manages a few SMS a minute);
- sliding per-minute, per-hour and per-day caps (None = no cap);
- a transient failure that smells of throttling (+CMS 41 after fast sends) slows the SIM down:
  each one doubles the floor up to 8x; successes bring it back step by step.

Pure logic over an injected clock and random source, so tests never sleep.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
MAX_SLOWDOWN = 8


@dataclass(frozen=True)
class SimLimits:
    """A SIM's pacing settings as the server's hello answer gives them (its defaults)."""

    min_interval_seconds: float = 10.0
    delaybetweeneachsms: float | None = None
    per_minute: int | None = 6
    per_hour: int | None = 100
    per_day: int | None = 500

    @classmethod
    def from_settings(cls, settings: dict[str, object], slot: int) -> SimLimits:
        """Build from a hello `settings` object; bad or missing values fall back to defaults."""
        sims = settings.get("sims")
        raw = sims.get(str(slot)) if isinstance(sims, dict) else None
        sim = raw if isinstance(raw, dict) else {}
        d = cls()
        return cls(
            min_interval_seconds=_nonneg(sim.get("min_interval_seconds"), d.min_interval_seconds),
            delaybetweeneachsms=_opt_nonneg(settings.get("delaybetweeneachsms"), None),
            per_minute=_cap(sim, "per_minute", d.per_minute),
            per_hour=_cap(sim, "per_hour", d.per_hour),
            per_day=_cap(sim, "per_day", d.per_day),
        )


class Pacer:
    def __init__(
        self,
        limits: SimLimits,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[float, float], float] | None = None,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._rand = rand or random.uniform
        self._sends: deque[float] = deque()  # send times within the last day, oldest first
        self._gap_until = 0.0
        # What _gap_until was made of, so that new limits can re-measure it (see update): the
        # floor multiplier of the last send, its random pause, and a failure's gap.
        self._send_slowdown = 1
        self._pause_until = 0.0
        self._failure_until = 0.0
        self._slowdown = 1

    def seed(self, send_times: Iterable[float]) -> None:
        """Restore the sliding windows from the journal (so a restart does not reset caps)."""
        now = self._clock()
        times = sorted(t for t in send_times if now - t < DAY)
        self._sends = deque(times)
        if times:
            self._gap_until = max(self._gap_until, times[-1] + self.limits.min_interval_seconds)

    def update(self, limits: SimLimits) -> None:
        floor_changed = limits.min_interval_seconds != self.limits.min_interval_seconds
        self.limits = limits
        if floor_changed and self._sends:
            # The gap after the last send was measured against the floor of that moment; after
            # a restart that is the default one (seed runs before the server's hello), so a
            # server floor of 2 s would wait 10 s and one of 60 s would allow a send after 10.
            floor = limits.min_interval_seconds * self._send_slowdown
            self._gap_until = max(self._sends[-1] + floor, self._pause_until, self._failure_until)

    def delay(self) -> float:
        """Seconds until this SIM may send; 0 means now."""
        now = self._clock()
        self._expire(now)
        ready = self._gap_until
        for window, cap in ((MINUTE, self.limits.per_minute), (HOUR, self.limits.per_hour),
                            (DAY, self.limits.per_day)):  # fmt: skip
            if cap == 0:
                ready = max(ready, now + window)  # nothing allowed: look again in a window
            elif cap is not None:
                in_window = [t for t in self._sends if now - t < window]
                if len(in_window) >= cap:
                    # Free again when enough of the oldest sends leave the window.
                    ready = max(ready, in_window[len(in_window) - cap] + window)
        return max(0.0, ready - now)

    def gap(self) -> float:
        """The longest pause the next send may bring (the floor, or the whole random range):
        what a promise of how many sends can start soon must assume."""
        floor = self.limits.min_interval_seconds * self._slowdown
        return max(floor, float(self.limits.delaybetweeneachsms or 0.0))

    def cap_left(self) -> int | None:
        """Sends the per-minute, per-hour and per-day caps still allow now (None: no cap)."""
        now = self._clock()
        left: int | None = None
        for window, cap in ((MINUTE, self.limits.per_minute), (HOUR, self.limits.per_hour),
                            (DAY, self.limits.per_day)):  # fmt: skip
            if cap is not None:
                used = 0
                for t in reversed(self._sends):  # newest first: stop at the window's edge
                    if now - t >= window:
                        break
                    used += 1
                left = max(0, cap - used) if left is None else min(left, max(0, cap - used))
        return left

    def record_send(self) -> None:
        """A message went out now: start the next gap."""
        now = self._clock()
        self._sends.append(now)
        floor = self.limits.min_interval_seconds * self._slowdown
        pause = 0.0
        if self.limits.delaybetweeneachsms:
            pause = self._rand(0.0, float(self.limits.delaybetweeneachsms))
        self._gap_until = now + max(floor, pause)
        self._send_slowdown = self._slowdown
        self._pause_until = now + pause
        self._failure_until = 0.0
        if self._slowdown > 1:
            self._slowdown //= 2

    def record_failure(self, *, throttled: bool) -> None:
        """A submit failed now; a throttling-like failure slows the SIM down."""
        now = self._clock()
        if throttled:
            self._slowdown = min(MAX_SLOWDOWN, self._slowdown * 2)
        floor = self.limits.min_interval_seconds * self._slowdown
        self._gap_until = max(self._gap_until, now + floor)
        self._failure_until = max(self._failure_until, now + floor)

    @property
    def slowdown(self) -> int:
        return self._slowdown

    def _expire(self, now: float) -> None:
        while self._sends and now - self._sends[0] >= DAY:
            self._sends.popleft()


def _nonneg(v: object, default: float) -> float:
    if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
        return float(v)
    return default


def _opt_nonneg(v: object, default: float | None) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
        return float(v)
    return default


def _cap(sim: dict[str, object], key: str, default: int | None) -> int | None:
    if key not in sim:
        return default
    v = sim[key]
    if v is None:
        return None  # the server says: no cap
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    return default
