"""The PostgreSQL twin of sqlite_devices.py (enrollment codes of pg_schema migration 17, device
renames), mixed into PgStore."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from simhive.server.core.errors import NotFound

T = TypeVar("T")
Conn = asyncpg.Connection


class PgDeviceAdminStore:
    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

    async def create_enrollment(
        self, code_hash: str, account_id: int, device_id: int, sealed: str, expires: int, now: int
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "DELETE FROM enrollment_codes WHERE expires < $1 OR used IS NOT NULL", now
            )
            await conn.execute(
                "INSERT INTO enrollment_codes(code_hash, account_id, device_id, sealed, expires,"
                " created) VALUES ($1, $2, $3, $4, $5, $6)",
                code_hash, account_id, device_id, sealed, expires, now,
            )  # fmt: skip

        await self._write(op)

    async def redeem_enrollment(self, code_hash: str, now: int) -> tuple[int, str] | None:
        async def op(conn: Conn) -> tuple[int, str] | None:
            # The row lock makes a second redeem of the same code (another request, another
            # server) wait for this one, then find it used: a code works once.
            row = await conn.fetchrow(
                "SELECT device_id, sealed FROM enrollment_codes WHERE code_hash = $1"
                " AND used IS NULL AND expires >= $2 AND sealed IS NOT NULL FOR UPDATE",
                code_hash, now,
            )  # fmt: skip
            if row is None:
                return None
            await conn.execute(
                "UPDATE enrollment_codes SET used = $1, sealed = NULL WHERE code_hash = $2",
                now, code_hash,
            )  # fmt: skip
            return int(row[0]), str(row[1])

        return await self._write(op)

    async def rename_device(self, device_id: int, title: str) -> None:
        async def op(conn: Conn) -> None:
            done = await conn.execute(
                "UPDATE devices SET title = $1 WHERE id = $2", title, device_id
            )
            if str(done).split()[-1] == "0":
                raise NotFound("Device not found")

        await self._write(op)
