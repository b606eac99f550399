"""SQLite implementation of IdempotencyStore (table of migration 8), mixed into SqliteStore."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from simhive.server.store.idempotency_base import IdempotencyStore, KeyRecord

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter


class SqliteIdempotencyStore(IdempotencyStore):
    """Needs SqliteStore's `writer`."""

    if TYPE_CHECKING:
        writer: GroupCommitWriter

    async def claim_key(
        self, account_id: int, key: str, fingerprint: str, now: int, expired_before: int
    ) -> KeyRecord | None:
        def op(conn: sqlite3.Connection) -> KeyRecord | None:
            # Expiry rides on the claims themselves: an indexed range delete that finds nothing
            # most of the time, and no timer of its own.
            conn.execute("DELETE FROM idempotency_keys WHERE created < ?", (expired_before,))
            row = conn.execute(
                "SELECT fingerprint, answer FROM idempotency_keys WHERE account_id = ? AND key = ?",
                (account_id, key),
            ).fetchone()
            if row is not None:
                return KeyRecord(str(row[0]), None if row[1] is None else str(row[1]))
            conn.execute(
                "INSERT INTO idempotency_keys(account_id, key, fingerprint, created)"
                " VALUES (?, ?, ?, ?)",
                (account_id, key, fingerprint, now),
            )
            return None

        return await self.writer.submit(op)

    async def answer_key(self, account_id: int, key: str, answer: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE idempotency_keys SET answer = ? WHERE account_id = ? AND key = ?",
                (answer, account_id, key),
            )

        await self.writer.submit(op, atomic=True)

    async def release_key(self, account_id: int, key: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE account_id = ? AND key = ? AND answer IS NULL",
                (account_id, key),
            )

        await self.writer.submit(op, atomic=True)
