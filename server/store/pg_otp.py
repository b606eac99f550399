"""The PostgreSQL twin of sqlite_otp.py (tables of pg_schema migration 18), mixed into PgStore.

A try locks the code's row (SELECT ... FOR UPDATE) before it counts: concurrent guesses, on this
server or another on the same database, count one after another and cannot pass the limit
together, as the single SQLite writer orders them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.store.otp_base import AccountPhone, OtpTry, otp_verdict

T = TypeVar("T")
Conn = asyncpg.Connection

_KEY = "account_id = $1 AND action = $2 AND target = $3"


class PgOtpStore:
    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def account_phone(self, account_id: int) -> AccountPhone | None:
        rows = await self._all(
            "SELECT number, verified, updated FROM account_phones WHERE account_id = $1",
            account_id,
        )
        if not rows:
            return None
        verified = rows[0][1]
        return AccountPhone(
            str(rows[0][0]), None if verified is None else int(verified), int(rows[0][2])
        )

    async def set_account_phone(self, account_id: int, number: str, now: int) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO account_phones(account_id, number, verified, updated)"
                " VALUES ($1, $2, NULL, $3) ON CONFLICT (account_id) DO UPDATE SET"
                " verified = CASE WHEN account_phones.number = excluded.number"
                " THEN account_phones.verified END,"
                " number = excluded.number, updated = excluded.updated",
                account_id, number, now,
            )  # fmt: skip

        await self._write(op)

    async def verify_account_phone(self, account_id: int, number: str, now: int) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE account_phones SET verified = $1, updated = $1"
                " WHERE account_id = $2 AND number = $3",
                now, account_id, number,
            )  # fmt: skip

        await self._write(op)

    async def otp_issue(
        self, account_id: int, action: str, target: int, code_hash: str, now: int, expires: int,
        resend_us: int,
    ) -> int | None:  # fmt: skip
        async def op(conn: Conn) -> int | None:
            row = await conn.fetchrow(
                f"SELECT sent, locked_until FROM otp_codes WHERE {_KEY} FOR UPDATE",
                account_id, action, target,
            )  # fmt: skip
            if row is not None:
                wait = max(int(row[0]) + resend_us, int(row[1] or 0))
                if wait > now:
                    return wait
            # ON CONFLICT: two first requests at once both find no row; one code wins.
            await conn.execute(
                "INSERT INTO otp_codes(account_id, action, target, code_hash, sent, expires,"
                " attempts, locked_until) VALUES ($1, $2, $3, $4, $5, $6, 0, NULL)"
                " ON CONFLICT (account_id, action, target) DO UPDATE SET"
                " code_hash = excluded.code_hash, sent = excluded.sent,"
                " expires = excluded.expires, attempts = 0, locked_until = NULL",
                account_id, action, target, code_hash, now, expires,
            )  # fmt: skip
            return None

        return await self._write(op)

    async def otp_drop(self, account_id: int, action: str, target: int) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(f"DELETE FROM otp_codes WHERE {_KEY}", account_id, action, target)

        await self._write(op)

    async def otp_try(
        self, account_id: int, action: str, target: int, now: int, max_attempts: int
    ) -> OtpTry:
        async def op(conn: Conn) -> OtpTry:
            row = await conn.fetchrow(
                "SELECT code_hash, expires, attempts, locked_until FROM otp_codes"
                f" WHERE {_KEY} FOR UPDATE",
                account_id, action, target,
            )  # fmt: skip
            verdict = otp_verdict(row, now, max_attempts)
            if verdict.state == "ok":
                await conn.execute(
                    f"UPDATE otp_codes SET attempts = attempts + 1 WHERE {_KEY}",
                    account_id, action, target,
                )  # fmt: skip
            return verdict

        return await self._write(op)

    async def otp_fail(
        self, account_id: int, action: str, target: int, attempts: int, max_attempts: int,
        lock_until: int,
    ) -> None:  # fmt: skip
        if attempts < max_attempts:
            return

        async def op(conn: Conn) -> None:
            await conn.execute(
                f"UPDATE otp_codes SET code_hash = NULL, locked_until = $4 WHERE {_KEY}",
                account_id, action, target, lock_until,
            )  # fmt: skip

        await self._write(op)

    async def otp_use(self, account_id: int, action: str, target: int, code_hash: str) -> bool:
        async def op(conn: Conn) -> bool:
            done = await conn.execute(
                f"DELETE FROM otp_codes WHERE {_KEY} AND code_hash = $4",
                account_id, action, target, code_hash,
            )  # fmt: skip
            return str(done).split()[-1] != "0"

        return await self._write(op)
