"""Received SMS, keyed by the modem layer's idempotency key, until the server has them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from simhive.agent.journal.base import JournalBase
from simhive.agent.modem.base import IncomingSms


class InboxJournal(JournalBase):
    async def add_incoming(self, device: str, sms: IncomingSms) -> bool:
        """Store a received SMS once per key; True if it is new. On disk when this returns."""
        args = (
            device,
            sms.key,
            sms.slot,
            sms.sender,
            sms.text,
            sms.sent_at.isoformat() if sms.sent_at else None,
            sms.received_at.isoformat(),
            sms.parts,
            int(sms.incomplete),
            device,
        )

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "INSERT INTO inbox (device, key, slot, sender, body, sent_at, received_at,"
                " parts, incomplete, seq) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " coalesce(max(seq), 0) + 1 FROM inbox WHERE device = ?"
                " ON CONFLICT (device, key) DO NOTHING",
                args,
            )
            return cur.rowcount == 1

        return await self._write(op)

    async def pending_incoming(self, device: str, limit: int) -> list[dict[str, Any]]:
        rows = await self._rows(
            "SELECT key, slot, sender, body, sent_at, received_at, parts, incomplete FROM inbox"
            " WHERE device = ? AND forwarded = 0 ORDER BY seq LIMIT ?",
            (device, limit),
        )
        return [
            {"key": k, "sim": s, "from": f, "body": b, "sent_at": sa, "received_at": ra,
             "parts": p, "incomplete": bool(inc)}
            for k, s, f, b, sa, ra, p, inc in rows
        ]  # fmt: skip

    async def mark_forwarded(self, device: str, accepted: Sequence[tuple[str, int | None]]) -> None:
        await self._tx([(
            "UPDATE inbox SET forwarded = 1, sms_id = ? WHERE device = ? AND key = ?",
            (sms_id, device, key),
        ) for key, sms_id in accepted])  # fmt: skip

    async def mark_refused(self, device: str, keys: Sequence[str]) -> None:
        """The server answered but did not accept these: keep them, stop offering them."""
        await self._tx([(
            "UPDATE inbox SET forwarded = -1 WHERE device = ? AND key = ?", (device, k),
        ) for k in keys])  # fmt: skip

    async def is_forwarded(self, device: str, key: str) -> bool:
        rows = await self._rows(
            "SELECT forwarded FROM inbox WHERE device = ? AND key = ?", (device, key)
        )
        return bool(rows and rows[0][0] == 1)
