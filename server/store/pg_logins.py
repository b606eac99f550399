"""Login failures counted in the database, so the hard login locks hold across every server of
one PostgreSQL database (server/core/ratelimit.py; table of pg_schema migration 10).

An attempt is recorded (under each key it is limited by) before its password is checked, and
counts as a failure until it is judged, as in each server's memory: attempts sent together to
different servers cannot pass a limit, because the check and the record happen in one
transaction that holds a lock per key (advisory, taken in key order).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import asyncpg

T = TypeVar("T")
Conn = asyncpg.Connection


class PgLoginStore:
    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

    def shares_logins(self) -> bool:
        return True

    async def login_begin(
        self, limits: Sequence[tuple[str, int]], since: int, now: int
    ) -> list[int] | int:
        keys = sorted({key for key, _ in limits})

        async def op(conn: Conn) -> list[int] | int:
            for key in keys:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key)
            await conn.execute(
                "DELETE FROM login_attempts WHERE key = ANY($1::text[]) AND at < $2", keys, since
            )
            oldest = 0
            for key, most in limits:
                rows = await conn.fetch(
                    "SELECT at FROM login_attempts WHERE key = $1 ORDER BY at DESC LIMIT $2",
                    key, most,
                )  # fmt: skip
                if len(rows) >= most:
                    oldest = max(oldest, int(rows[-1][0]))
            if oldest:
                return oldest
            return [
                int(await conn.fetchval(
                    "INSERT INTO login_attempts(key, at) VALUES ($1, $2) RETURNING id", key, now
                ))
                for key, _ in limits
            ]  # fmt: skip

        return await self._write(op)

    async def login_end(self, ids: Sequence[int], ok: bool, clear: str | None) -> None:
        async def op(conn: Conn) -> None:
            if ok:
                await conn.execute(
                    "DELETE FROM login_attempts WHERE id = ANY($1::bigint[]) OR key = $2",
                    list(ids), clear,
                )  # fmt: skip
            else:
                await conn.execute(
                    "UPDATE login_attempts SET judged = 1 WHERE id = ANY($1::bigint[])", list(ids)
                )

        await self._write(op)
