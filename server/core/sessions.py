"""Console login sessions: random cookie values, stored hashed, with a CSRF token each.

A session ends when it has been idle for `idle_seconds`, `max_seconds` after it began whatever
its use, or at logout. Sessions are rows in the database (console_sessions, through the
ConsoleStore), so every server of one database knows every session, and a restart logs nobody
out.

The cookie value is 128 random bits; only its SHA-256 digest is stored (like API tokens), so a
copy of the database does not hand out live sessions. Each session has its own CSRF token, which
every form posts back; it is compared in constant time. Times are wall-clock microseconds, the
same on every server.

Marking a session used is a write, so it is done at most every `touch_seconds` per session rather
than on every page: the idle timeout is then exact to within that much.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from simhive.server.core.dates import now_us
from simhive.server.core.security import hash_token
from simhive.server.store.console_base import ConsoleStore, SessionRow

IDLE_SECONDS = 30 * 60
MAX_SECONDS = 12 * 3600
TOUCH_SECONDS = 60
US = 1_000_000


@dataclass
class Session:
    account_id: int
    csrf: str
    started: int
    used: int
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) for the next page
    stored_flash: list[tuple[str, str]] = field(default_factory=list)  # as in the database

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def _flash(text: str) -> list[tuple[str, str]]:
    try:
        return [(str(kind), str(note)) for kind, note in json.loads(text)]
    except (ValueError, TypeError):  # not what this module writes: no notes
        return []


class Sessions:
    def __init__(
        self,
        store: ConsoleStore,
        idle_seconds: float = IDLE_SECONDS,
        max_seconds: float = MAX_SECONDS,
        clock: Callable[[], int] = now_us,
        touch_seconds: float = TOUCH_SECONDS,
    ) -> None:
        self.store = store
        self.idle_us = int(idle_seconds * US)
        self.max_us = int(max_seconds * US)
        self.touch_us = int(min(touch_seconds, idle_seconds / 10) * US)
        self.clock = clock

    async def start(self, account_id: int) -> tuple[str, Session]:
        """A new session; returns the cookie value (shown to the browser only) and the session.
        Sessions idle for longer than the timeout are deleted on the way."""
        token = secrets.token_hex(16)
        now = self.clock()
        session = Session(account_id, secrets.token_urlsafe(24), now, now)
        await self.store.add_session(
            hash_token(token), account_id, session.csrf, now, now - self.idle_us
        )
        return token, session

    async def get(self, token: str | None) -> Session | None:
        """The live session of a cookie value (and mark it used), or None."""
        session = await self.peek(token)
        if session is not None and token:
            now = self.clock()
            if now - session.used >= self.touch_us:
                await self.store.touch_session(hash_token(token), now)
                session.used = now
        return session

    async def peek(self, token: str | None) -> Session | None:
        """The live session of a cookie value without marking it used: a page left open with
        live updates is not the user's activity and must not keep the session from expiring."""
        if not token:
            return None
        key = hash_token(token)
        row: SessionRow | None = await self.store.session(key)
        if row is None:
            return None
        now = self.clock()
        if now - row.used > self.idle_us or now - row.started > self.max_us:
            await self.store.end_sessions(key)
            return None
        flash = _flash(row.flash)
        return Session(row.account_id, row.csrf, row.started, row.used, flash, list(flash))

    async def save_flash(self, token: str | None, session: Session) -> None:
        """Store the session's notes for the next page if a page added or showed some."""
        if token and session.flash != session.stored_flash:
            await self.store.set_session_flash(hash_token(token), json.dumps(session.flash))
            session.stored_flash = list(session.flash)

    async def end(self, token: str | None) -> None:
        if token:
            await self.store.end_sessions(hash_token(token))

    async def end_account(self, account_id: int) -> None:
        """End every session of an account (its password changed)."""
        await self.store.end_sessions(None, account_id)
