"""Deleting a device or an account with everything that is only theirs, in one transaction
(what goes: server/store/delete_sql.py, shared with PostgreSQL)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from simhive.server.store.base import StoreError
from simhive.server.store.delete_sql import (
    ACCOUNT_COUNTS,
    DELETE_ACCOUNT,
    DELETE_DEVICE,
    DEVICE_COUNTS,
)

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter


class SqliteDeleteStore:
    writer: GroupCommitWriter

    async def delete_device(
        self, device_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            counts = _counts(conn, DEVICE_COUNTS, {"d": device_id})
            if not dry_run:
                _run(conn, DELETE_DEVICE, {"d": device_id, "now": now})
            return counts

        return await self.writer.submit(op)

    async def delete_account(
        self, account_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT id FROM devices WHERE account_id = ?", (account_id,))
            devices = [int(r[0]) for r in rows]
            counts = {"devices": len(devices), **_counts(conn, ACCOUNT_COUNTS, {"a": account_id})}
            if not dry_run:
                for device_id in devices:
                    _run(conn, DELETE_DEVICE, {"d": device_id, "now": now})
                _run(conn, DELETE_ACCOUNT, {"a": account_id})
            return counts

        return await self.writer.submit(op)


def _counts(conn: sqlite3.Connection, queries: dict[str, str], p: dict[str, int]) -> dict[str, int]:
    return {name: int(conn.execute(sql, p).fetchone()[0]) for name, sql in queries.items()}


def _run(conn: sqlite3.Connection, statements: list[str], params: dict[str, int]) -> None:
    try:
        for sql in statements:
            conn.execute(sql, params)
    except sqlite3.IntegrityError as exc:  # a table this module does not know refers to the row
        raise StoreError(f"cannot delete: rows elsewhere still refer to it ({exc})") from None
