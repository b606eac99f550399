"""SQLite implementation of OtpStore (tables of the phone and one-time code migration), mixed
into SqliteStore: it needs the store's `writer` and `_all`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simhive.server.store.otp_base import AccountPhone, OtpStore, OtpTry, otp_verdict

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

_KEY = "account_id = ? AND action = ? AND target = ?"


class SqliteOtpStore(OtpStore):
    writer: GroupCommitWriter

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore

    async def account_phone(self, account_id: int) -> AccountPhone | None:
        rows = await self._all(
            "SELECT number, verified, updated FROM account_phones WHERE account_id = ?",
            (account_id,),
        )
        return AccountPhone(str(rows[0][0]), rows[0][1], int(rows[0][2])) if rows else None

    async def set_account_phone(self, account_id: int, number: str, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO account_phones(account_id, number, verified, updated)"
                " VALUES (?, ?, NULL, ?) ON CONFLICT(account_id) DO UPDATE SET"
                " verified = CASE WHEN number = excluded.number THEN verified END,"
                " number = excluded.number, updated = excluded.updated",
                (account_id, number, now),
            )

        await self.writer.submit(op, atomic=True)

    async def verify_account_phone(self, account_id: int, number: str, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE account_phones SET verified = ?, updated = ?"
                " WHERE account_id = ? AND number = ?",
                (now, now, account_id, number),
            )

        await self.writer.submit(op, atomic=True)

    async def otp_issue(
        self, account_id: int, action: str, target: int, code_hash: str, now: int, expires: int,
        resend_us: int,
    ) -> int | None:  # fmt: skip
        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(f"SELECT sent, locked_until FROM otp_codes WHERE {_KEY}",
                               (account_id, action, target)).fetchone()  # fmt: skip
            if row is not None:
                sent, locked = int(row[0]), row[1]
                wait = max(sent + resend_us, int(locked or 0))
                if wait > now:
                    return wait
            conn.execute(
                "INSERT OR REPLACE INTO otp_codes(account_id, action, target, code_hash, sent,"
                " expires, attempts, locked_until) VALUES (?, ?, ?, ?, ?, ?, 0, NULL)",
                (account_id, action, target, code_hash, now, expires),
            )
            return None

        return await self.writer.submit(op)

    async def otp_drop(self, account_id: int, action: str, target: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(f"DELETE FROM otp_codes WHERE {_KEY}", (account_id, action, target))

        await self.writer.submit(op, atomic=True)

    async def otp_try(
        self, account_id: int, action: str, target: int, now: int, max_attempts: int
    ) -> OtpTry:
        def op(conn: sqlite3.Connection) -> OtpTry:
            row = conn.execute(
                f"SELECT code_hash, expires, attempts, locked_until FROM otp_codes WHERE {_KEY}",
                (account_id, action, target),
            ).fetchone()
            verdict = otp_verdict(row, now, max_attempts)
            if verdict.state == "ok":
                conn.execute(f"UPDATE otp_codes SET attempts = attempts + 1 WHERE {_KEY}",
                             (account_id, action, target))  # fmt: skip
            return verdict

        return await self.writer.submit(op)

    async def otp_fail(
        self, account_id: int, action: str, target: int, attempts: int, max_attempts: int,
        lock_until: int,
    ) -> None:  # fmt: skip
        if attempts < max_attempts:
            return

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(f"UPDATE otp_codes SET code_hash = NULL, locked_until = ? WHERE {_KEY}",
                         (lock_until, account_id, action, target))  # fmt: skip

        await self.writer.submit(op, atomic=True)

    async def otp_use(self, account_id: int, action: str, target: int, code_hash: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(f"DELETE FROM otp_codes WHERE {_KEY} AND code_hash = ?",
                               (account_id, action, target, code_hash))  # fmt: skip
            return cur.rowcount > 0

        return await self.writer.submit(op, atomic=True)
