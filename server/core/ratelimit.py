"""Login lockouts and slow-downs (docs/configuration.md, "Accounts and tokens").

scrypt makes each guess cost tens of milliseconds; these limits cap how many guesses are judged
at all. Every attempt is counted *before* its password check, in the same event-loop step that
checks the limit (no await in between), and counts as a failure until it is judged: guesses that
arrive together cannot pass the limit, whatever the concurrency.

- Per (email, client address): a hard lock. A stranger locks only their own pair, so the owner,
  from any other address, is never locked out by them.
- Per client address: a hard lock across all emails (one address spraying many accounts).
- Per email, across all addresses, and globally: no lock (that would let anyone lock the owner
  out) but a slow-down. Once the email, or the whole server, has had many recent failures, judged
  attempts are spaced apart; an attempt waits for its slot, or is refused when the slot is too
  far away. A many-address attack on one email gets a bounded rate of guesses; the owner waits
  a moment.

In memory and per process: a restart forgets the counts, which only ever helps the user. Several
servers on one PostgreSQL database (Store.shares_limits) also count the hard locks in the database
and keep the slow-downs there instead of in memory (`SharedLogins`), so a client gets no more
guesses, and no shorter waits, by spreading its attempts over the servers.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from simhive.server.core import limits

# Retry hint when the limit is full only because attempts are being judged right now: they take
# tens of milliseconds, so the answer is known within a second.
IN_FLIGHT_RETRY_SECONDS = 1.0


class Locked(Exception):
    """Refused without judging the password; `retry_after` seconds until it is worth trying."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class FailureWindow:
    """Failures per key within a sliding `window` (seconds), plus attempts in flight.

    An attempt in flight counts as a failure until it is judged. A key is full at `max_failures`;
    memory stays bounded by evicting the oldest keys beyond `max_keys`.
    """

    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float], max_keys: int
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}

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

    def count(self, key: str) -> int:
        """Recent failures of `key`, not counting attempts in flight."""
        stamps = self._recent(key, self.clock())
        return len(stamps) if stamps is not None else 0

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may start another attempt; 0 when it may now."""
        now = self.clock()
        stamps = self._recent(key, now)
        failed = len(stamps) if stamps is not None else 0
        if failed + self._in_flight.get(key, 0) < self.max_failures:
            return 0.0
        if stamps is not None and failed >= self.max_failures:
            # Free again when the oldest failure that still makes the count full ages out.
            return max(stamps[failed - self.max_failures] + self.window - now, 0.001)
        return IN_FLIGHT_RETRY_SECONDS

    def begin(self, key: str) -> None:
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def end(self, key: str, failed: bool) -> None:
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)
        if failed:
            self.failure(key)

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

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class Pacer:
    """Spaces judged attempts of a key `interval` seconds apart once it has had `after` failures
    within the window; below that, attempts pass at once."""

    def __init__(
        self,
        after: int,
        interval: float,
        window: float,
        clock: Callable[[], float],
        max_keys: int,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.max_keys = max_keys
        self.failures = FailureWindow(after, window, clock, max_keys)
        self._next_free: dict[str, float] = {}

    def start_time(self, key: str, now: float) -> float:
        """When an attempt of `key` arriving now may be judged (now, or its next free slot)."""
        if self.failures.retry_after(key) == 0:
            return now
        return max(now, self._next_free.get(key, now))

    def reserve(self, key: str, start: float) -> None:
        """Take the slot at `start` (from start_time): the next attempt goes `interval` later."""
        if self.failures.retry_after(key) == 0:
            return
        if key not in self._next_free and len(self._next_free) >= self.max_keys:
            self._next_free.pop(next(iter(self._next_free)))
        self._next_free[key] = start + self.interval


@dataclass
class LoginAttempt:
    """An admitted attempt: wait `delay` seconds (the slow-down), judge it, then call done()."""

    guard: LoginGuard
    email: str
    client: str
    delay: float
    finished: bool = False

    def done(self, ok: bool) -> None:
        if self.finished:
            return
        self.finished = True
        self.guard._finish(self, ok)

    def withdraw(self) -> None:
        """The attempt is refused after all (the shared count is full): it is not judged and
        counts as nothing."""
        if self.finished:
            return
        self.finished = True
        pair = f"{self.client} {self.email}"
        self.guard.pairs.end(pair, failed=False)
        self.guard.clients.end(self.client, failed=False)


class LoginGuard:
    """The login limits of one server process (module docstring)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        per_pair: int = limits.LOGIN_FAILURES_PER_PAIR,
        per_client: int = limits.LOGIN_FAILURES_PER_CLIENT,
        window: float = limits.LOGIN_WINDOW_SECONDS,
        email_after: int = limits.LOGIN_SLOWDOWN_EMAIL_AFTER,
        email_interval: float = limits.LOGIN_SLOWDOWN_EMAIL_SECONDS,
        global_after: int = limits.LOGIN_SLOWDOWN_GLOBAL_AFTER,
        global_interval: float = limits.LOGIN_SLOWDOWN_GLOBAL_SECONDS,
        max_wait: float = limits.LOGIN_SLOWDOWN_MAX_WAIT_SECONDS,
        max_keys: int = 100_000,
        paced: bool = True,
    ) -> None:
        self.clock = clock
        self.max_wait = max_wait
        # False: the slow-downs are kept elsewhere (SharedLogins, in the database), and this
        # guard keeps only the hard locks.
        self.paced = paced
        self.pairs = FailureWindow(per_pair, window, clock, max_keys)
        self.clients = FailureWindow(per_client, window, clock, max_keys)
        self.emails = Pacer(email_after, email_interval, window, clock, max_keys)
        self.everyone = Pacer(global_after, global_interval, window, clock, 1)

    def admit(self, email: str, client: str | None) -> LoginAttempt:
        """Count an attempt before its check, or raise Locked. Synchronous on purpose: the limit
        check and the count happen in one step, with no other attempt in between."""
        client = client or ""
        pair = f"{client} {email}"
        wait = max(self.pairs.retry_after(pair), self.clients.retry_after(client))
        if wait > 0:
            raise Locked(wait)
        now = start = self.clock()
        if self.paced:
            start = max(self.emails.start_time(email, now), self.everyone.start_time("", now))
            if start - now > self.max_wait:
                raise Locked(start - now)
            self.emails.reserve(email, start)
            self.everyone.reserve("", start)
        self.pairs.begin(pair)
        self.clients.begin(client)
        return LoginAttempt(self, email, client, start - now)

    def _finish(self, attempt: LoginAttempt, ok: bool) -> None:
        pair = f"{attempt.client} {attempt.email}"
        failed = not ok
        self.pairs.end(pair, failed)
        self.clients.end(attempt.client, failed)
        if ok:
            # Only this address's record for this email: a success on one account must not
            # wipe what the address did to others, nor what other addresses did to this email.
            self.pairs.clear(pair)
        elif self.paced:
            self.emails.failures.failure(attempt.email)
            self.everyone.failures.failure("")


@dataclass(frozen=True, slots=True)
class SharedAttempt:
    """What Store.login_begin answers: the attempt's rows and when its password may be checked
    (`start`, wall-clock microseconds), or, when `refused_until` is set, nothing recorded and
    the time it is worth trying again."""

    ids: list[int]
    start: int
    refused_until: int | None = None


class SharedLogins:
    """The hard locks (per email and address pair, per address) and the slow-downs (per email,
    per database) counted in the store, for several servers on one database
    (Store.shares_limits). Times are wall-clock microseconds: the servers' monotonic clocks do
    not agree."""

    def __init__(
        self,
        store: SharedLoginStore,
        clock: Callable[[], int],
        *,
        per_pair: int = limits.LOGIN_FAILURES_PER_PAIR,
        per_client: int = limits.LOGIN_FAILURES_PER_CLIENT,
        window: float = limits.LOGIN_WINDOW_SECONDS,
        email_after: int = limits.LOGIN_SLOWDOWN_EMAIL_AFTER,
        email_interval: float = limits.LOGIN_SLOWDOWN_EMAIL_SECONDS,
        global_after: int = limits.LOGIN_SLOWDOWN_GLOBAL_AFTER,
        global_interval: float = limits.LOGIN_SLOWDOWN_GLOBAL_SECONDS,
        max_wait: float = limits.LOGIN_SLOWDOWN_MAX_WAIT_SECONDS,
    ) -> None:
        self.store = store
        self.clock = clock
        self.per_pair = per_pair
        self.per_client = per_client
        self.window_us = int(window * 1_000_000)
        self.email_pace = (email_after, int(email_interval * 1_000_000))
        self.global_pace = (global_after, int(global_interval * 1_000_000))
        self.max_wait_us = int(max_wait * 1_000_000)

    @staticmethod
    def _key(*parts: str) -> str:
        # Hashed: the tables keep no address or email.
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def pair_key(self, email: str, client: str | None) -> str:
        return self._key("pair", client or "", email)

    def pace_keys(self, email: str) -> list[str]:
        return [self._key("email", email), self._key("everyone")]

    async def begin(self, email: str, client: str | None) -> tuple[list[int], float]:
        """Record the attempt before its check: its rows and the seconds to wait for its
        slow-down slot; or raise Locked."""
        now = self.clock()
        limits_ = [(self.pair_key(email, client), self.per_pair),
                   (self._key("client", client or ""), self.per_client)]  # fmt: skip
        email_key, global_key = self.pace_keys(email)
        paces = [(email_key, *self.email_pace), (global_key, *self.global_pace)]
        got = await self.store.login_begin(
            limits_, paces, now - self.window_us, now, self.max_wait_us
        )
        if got.refused_until is not None:
            raise Locked(max((got.refused_until - now) / 1_000_000, IN_FLIGHT_RETRY_SECONDS))
        return got.ids, (got.start - now) / 1_000_000

    async def end(self, ids: list[int], email: str, client: str | None, ok: bool) -> None:
        """A failure stays counted under its locks and counts towards the slow-downs; a success
        clears the pair."""
        await self.store.login_end(
            ids,
            ok,
            self.pair_key(email, client) if ok else None,
            [] if ok else self.pace_keys(email),
            self.clock(),
        )


class SharedLoginStore(Protocol):
    """What SharedLogins needs of the store (server/store/base.py: Store.login_begin)."""

    async def login_begin(
        self,
        limits: Sequence[tuple[str, int]],
        paces: Sequence[tuple[str, int, int]],
        since: int,
        now: int,
        max_wait: int,
    ) -> SharedAttempt:
        raise NotImplementedError

    async def login_end(
        self, ids: Sequence[int], ok: bool, clear: str | None, failures: Sequence[str], now: int
    ) -> None:
        raise NotImplementedError


def wait_text(seconds: float) -> str:
    """`N s` under a minute, else `N min`, rounded up (never "0")."""
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    return f"{math.ceil(seconds / 60)} min"
