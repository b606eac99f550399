"""Deleting a device or an account on PostgreSQL, in one transaction: the statements of
server/store/delete_sql.py, their named parameters turned into asyncpg's numbered ones."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from simhive.server.store.base import StoreError
from simhive.server.store.delete_sql import (
    ACCOUNT_COUNTS,
    DELETE_ACCOUNT,
    DELETE_DEVICE,
    DEVICE_COUNTS,
)

T = TypeVar("T")
Conn = asyncpg.Connection
_NAME = re.compile(r":([a-z]+)\b")


def numbered(sql: str, params: dict[str, int]) -> tuple[str, list[int]]:
    """`:name` placeholders as `$n`, with the argument list in that order."""
    order: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in order:
            order.append(m.group(1))
        return f"${order.index(m.group(1)) + 1}"

    return _NAME.sub(number, sql), [params[name] for name in order]


class PgDeleteStore:
    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

    async def delete_device(
        self, device_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        async def op(conn: Conn) -> dict[str, int]:
            await _lock_device(conn, device_id)
            counts = await _counts(conn, DEVICE_COUNTS, {"d": device_id})
            if not dry_run:
                await _run(conn, DELETE_DEVICE, {"d": device_id, "now": now})
            return counts

        return await self._write(op)

    async def delete_account(
        self, account_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        async def op(conn: Conn) -> dict[str, int]:
            rows = await conn.fetch(
                "SELECT id FROM devices WHERE account_id = $1 ORDER BY id", account_id
            )
            devices = [int(r[0]) for r in rows]
            for device_id in devices:
                await _lock_device(conn, device_id)
            counts = {
                "devices": len(devices),
                **await _counts(conn, ACCOUNT_COUNTS, {"a": account_id}),
            }
            if not dry_run:
                for device_id in devices:
                    await _run(conn, DELETE_DEVICE, {"d": device_id, "now": now})
                await _run(conn, DELETE_ACCOUNT, {"a": account_id})
            return counts

        return await self._write(op)


async def _lock_device(conn: Conn, device_id: int) -> None:
    # The device's row lock orders this delete after any lease or commit of the device running on
    # another server (they take the same lock), so none of them lands on rows deleted here.
    await conn.execute("SELECT 1 FROM devices WHERE id = $1 FOR UPDATE", device_id)


async def _counts(conn: Conn, queries: dict[str, str], p: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, sql in queries.items():
        query, args = numbered(sql, p)
        out[name] = int(await conn.fetchval(query, *args))
    return out


async def _run(conn: Conn, statements: list[str], params: dict[str, int]) -> None:
    try:
        for sql in statements:
            query, args = numbered(sql, params)
            await conn.execute(query, *args)
    except asyncpg.ForeignKeyViolationError as exc:  # a table this list does not know
        raise StoreError(f"cannot delete: rows elsewhere still refer to it ({exc})") from None
