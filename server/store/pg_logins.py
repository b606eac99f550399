"""Limits counted in the database, so they hold across every server of one PostgreSQL database:
the login locks and slow-downs (server/core/ratelimit.py; tables of pg_schema migrations 12 and
20) and the API keys' rate limits (server/core/key_rate.py).

A login attempt is recorded (under each key it is limited by) before its password is checked, and
counts as a failure until it is judged, as in each server's memory: attempts sent together to
different servers cannot pass a limit, because the check and the record happen in one
transaction that holds a lock per key (advisory, taken in key order). Logins are rare and each
costs tens of milliseconds of scrypt, so a few statements more per login do not matter.

A rate limit is checked on every API request, so it is one statement, one round trip and no WAL
flush (an UNLOGGED table, outside any explicit transaction): an upsert of the key's token bucket
that takes a token only when the refilled bucket holds one. Its row lock orders requests of one
key on every server, so exactly `rate` of a burst pass.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.core.ratelimit import SharedAttempt

T = TypeVar("T")
Conn = asyncpg.Connection

# Refill: `rate` tokens a minute, at most `rate` held; now ($4) never before the bucket's time.
_REFILL = "LEAST($3::float8, b.tokens + GREATEST($4 - b.at, 0) * $3::float8 / 60000000.0)"
# The CTE's upsert and the outer SELECT see one snapshot: `had` is the bucket before this take
# (for the retry hint when refused), `left_` what the take left (NULL: refused).
_TAKE = f"""
WITH took AS (
    INSERT INTO rate_buckets AS b (key_id, account_id, tokens, at)
    VALUES ($1, $2, $3::float8 - 1, $4)
    ON CONFLICT (key_id) DO UPDATE SET tokens = {_REFILL} - 1, at = GREATEST($4, b.at)
    WHERE {_REFILL} >= 1
    RETURNING tokens
)
SELECT (SELECT tokens FROM took) AS left_,
       (SELECT {_REFILL} FROM rate_buckets b WHERE b.key_id = $1) AS had
"""


class PgLoginStore:
    if TYPE_CHECKING:

        async def _write(
            self, op: Callable[[Conn], Awaitable[T]], *, durable: bool = True
        ) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    def shares_limits(self) -> bool:
        return True

    async def login_begin(
        self,
        limits: Sequence[tuple[str, int]],
        paces: Sequence[tuple[str, int, int]],
        since: int,
        now: int,
        max_wait: int,
    ) -> SharedAttempt:
        keys = sorted({key for key, _ in limits} | {key for key, _, _ in paces})

        async def op(conn: Conn) -> SharedAttempt:
            for key in keys:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
            await conn.execute(
                "DELETE FROM login_attempts WHERE key = ANY($1::text[]) AND at < $2", keys, since
            )
            # Slots long past say nothing; the index keeps this a short range scan.
            await conn.execute("DELETE FROM login_pace WHERE next_free < $1", since)
            oldest = 0
            for key, most in limits:
                rows = await conn.fetch(
                    "SELECT at FROM login_attempts WHERE key = $1 ORDER BY at DESC LIMIT $2",
                    key, most,
                )  # fmt: skip
                if len(rows) >= most:
                    oldest = max(oldest, int(rows[-1][0]))
            if oldest:
                return SharedAttempt([], now, refused_until=oldest + (now - since))
            start, paced = now, []
            for key, after, interval in paces:
                failed = await conn.fetchval(
                    "SELECT count(*) FROM (SELECT 1 FROM login_attempts WHERE key = $1"
                    " LIMIT $2) f",
                    key, after,
                )  # fmt: skip
                if failed >= after:
                    free = await conn.fetchval(
                        "SELECT next_free FROM login_pace WHERE key = $1", key
                    )
                    start = max(start, int(free or now))
                    paced.append((key, interval))
            if start - now > max_wait:
                return SharedAttempt([], start, refused_until=start)
            for key, interval in paced:
                await conn.execute(
                    "INSERT INTO login_pace(key, next_free) VALUES ($1, $2)"
                    " ON CONFLICT (key) DO UPDATE SET next_free = excluded.next_free",
                    key, start + interval,
                )  # fmt: skip
            ids = [
                int(await conn.fetchval(
                    "INSERT INTO login_attempts(key, at) VALUES ($1, $2) RETURNING id", key, now
                ))
                for key, _ in limits
            ]  # fmt: skip
            return SharedAttempt(ids, start)

        return await self._write(op)

    async def login_end(
        self, ids: Sequence[int], ok: bool, clear: str | None, failures: Sequence[str], now: int
    ) -> None:
        async def op(conn: Conn) -> None:
            if ok:
                await conn.execute(
                    "DELETE FROM login_attempts WHERE id = ANY($1::bigint[]) OR key = $2",
                    list(ids), clear,
                )  # fmt: skip
                return
            await conn.execute(
                "UPDATE login_attempts SET judged = 1 WHERE id = ANY($1::bigint[])", list(ids)
            )
            await conn.execute(
                "INSERT INTO login_attempts(key, at, judged) SELECT k, $2, 1"
                " FROM unnest($1::text[]) AS k",
                list(failures), now,
            )  # fmt: skip

        await self._write(op)

    async def rate_take(
        self, key_id: int, account_id: int, rate: int, now: int
    ) -> tuple[bool, float | None]:
        rows = await self._all(_TAKE, key_id, account_id, rate, now)
        left, had = rows[0][0], rows[0][1]
        if left is not None:
            return True, float(left)
        return False, None if had is None else float(had)
