"""SQLite implementation of DeviceAdminStore, mixed into SqliteStore (needs its `writer`)."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from simhive.server.core.errors import NotFound
from simhive.server.store.devices_base import DeviceAdminStore

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter


class SqliteDeviceAdminStore(DeviceAdminStore):
    writer: GroupCommitWriter

    async def create_enrollment(
        self, code_hash: str, account_id: int, device_id: int, sealed: str, expires: int, now: int
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM enrollment_codes WHERE expires < ? OR used IS NOT NULL",
                         (now,))  # fmt: skip
            conn.execute(
                "INSERT INTO enrollment_codes(code_hash, account_id, device_id, sealed, expires,"
                " created) VALUES (?, ?, ?, ?, ?, ?)",
                (code_hash, account_id, device_id, sealed, expires, now),
            )

        await self.writer.submit(op)

    async def redeem_enrollment(self, code_hash: str, now: int) -> tuple[int, str] | None:
        def op(conn: sqlite3.Connection) -> tuple[int, str] | None:
            # One writer transaction: nothing can use the code between the read and the write.
            row = conn.execute(
                "SELECT device_id, sealed FROM enrollment_codes WHERE code_hash = ?"
                " AND used IS NULL AND expires >= ? AND sealed IS NOT NULL",
                (code_hash, now),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE enrollment_codes SET used = ?, sealed = NULL WHERE code_hash = ?",
                (now, code_hash),
            )
            return int(row[0]), str(row[1])

        return await self.writer.submit(op)

    async def rename_device(self, device_id: int, title: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute("UPDATE devices SET title = ? WHERE id = ?", (title, device_id))
            if not cur.rowcount:
                raise NotFound("Device not found")

        await self.writer.submit(op, atomic=True)
