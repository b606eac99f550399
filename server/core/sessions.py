"""Console login sessions: random cookie values, stored hashed, with a CSRF token each.

A session ends when it has been idle for `idle_seconds`, `max_seconds` after it began whatever
its use, or at logout. Sessions live in the server process: a restart logs everyone out, which
costs a login and never keeps a session alive longer than it should.

The cookie value is 128 random bits; only its SHA-256 digest is kept (like API tokens), so a memory
dump does not hand out live sessions. Each session has its own CSRF token, which every form posts
back; it is compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from simhive.server.core.security import hash_token

IDLE_SECONDS = 30 * 60
MAX_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000


@dataclass
class Session:
    account_id: int
    csrf: str
    started: float
    used: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) for the next page

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(
        self,
        idle_seconds: float = IDLE_SECONDS,
        max_seconds: float = MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.clock = clock
        self.max_sessions = max_sessions
        self._by_hash: dict[str, Session] = {}

    def start(self, account_id: int) -> tuple[str, Session]:
        """A new session; returns the cookie value (shown to the browser only) and the session."""
        self._prune()
        if len(self._by_hash) >= self.max_sessions:  # bounded memory: the oldest goes first
            self._by_hash.pop(next(iter(self._by_hash)))
        token = secrets.token_hex(16)
        now = self.clock()
        session = Session(account_id, secrets.token_urlsafe(24), now, now)
        self._by_hash[hash_token(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value (and mark it used), or None."""
        session = self.peek(token)
        if session is not None:
            session.used = self.clock()
        return session

    def peek(self, token: str | None) -> Session | None:
        """The live session of a cookie value without marking it used: a page left open with
        live updates is not the user's activity and must not keep the session from expiring."""
        if not token:
            return None
        key = hash_token(token)
        session = self._by_hash.get(key)
        if session is None:
            return None
        now = self.clock()
        if now - session.used > self.idle_seconds or now - session.started > self.max_seconds:
            del self._by_hash[key]
            return None
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._by_hash.pop(hash_token(token), None)

    def end_account(self, account_id: int) -> None:
        """End every session of an account (its password changed)."""
        for key in [k for k, s in self._by_hash.items() if s.account_id == account_id]:
            del self._by_hash[key]

    def _prune(self) -> None:
        now = self.clock()
        for key in [
            k
            for k, s in self._by_hash.items()
            if now - s.used > self.idle_seconds or now - s.started > self.max_seconds
        ]:
            del self._by_hash[key]

    def __len__(self) -> int:
        return len(self._by_hash)
