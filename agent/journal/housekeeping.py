"""Forgetting finished history, so the journal does not grow without bound."""

from __future__ import annotations

import sqlite3

from simhive.agent.journal.base import JournalBase

FINAL = "('delivered', 'not_delivered', 'failed', 'unknown')"


class HousekeepingJournal(JournalBase):
    async def prune(self, before: float, *, keep_events: int = 10000) -> int:
        """Forget finished history older than `before` (unix time); returns rows deleted.

        Only rows nothing depends on any more: messages in a final state whose report events
        the server has accepted, with their parts; forwarded SMS (their keys guard against a
        re-read only while the modem might still hold them); and accepted events beyond the
        newest `keep_events`. Open work (leased, committed, dispatching, sent) is never touched.
        """
        stmts = [
            (f"DELETE FROM parts WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.device ="
             f" parts.device AND o.id = parts.msg_id AND o.state IN {FINAL} AND o.updated < ?)",
             (before,)),
            (f"DELETE FROM outbox WHERE state IN {FINAL} AND updated < ? AND NOT EXISTS"
             " (SELECT 1 FROM events e WHERE e.device = outbox.device AND e.channel = 'report'"
             " AND e.done = 0 AND e.event_id LIKE outbox.id || ':%')", (before,)),
            ("DELETE FROM inbox WHERE forwarded != 0 AND julianday(received_at) <"
             " julianday(?, 'unixepoch')", (before,)),
            ("DELETE FROM events WHERE done = 1 AND seq <"
             " (SELECT coalesce(max(seq), 0) FROM events) - ?", (keep_events,)),
        ]  # fmt: skip

        def op(conn: sqlite3.Connection) -> int:
            return sum(max(0, conn.execute(sql, args).rowcount) for sql, args in stmts)

        return await self._write(op)
