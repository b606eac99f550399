"""What the server must hear (`report` and `status` channels), in order, each event once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from simhive.agent.journal.base import JournalBase
from simhive.agent.journal.loads import unchanged
from simhive.agent.journal.records import PendingEvent, event_stmt


class EventJournal(JournalBase):
    async def add_event(self, device: str, channel: str, event: dict[str, Any]) -> None:
        await self._tx([event_stmt(device, channel, event)], unchanged)

    async def pending_events(self, device: str, channel: str, limit: int) -> list[PendingEvent]:
        rows = await self._rows(
            "SELECT seq, event_id, body FROM events WHERE device = ? AND channel = ? AND done = 0"
            " ORDER BY seq LIMIT ?",
            (device, channel, limit),
        )
        return [PendingEvent(int(s), str(e), str(b)) for s, e, b in rows]

    async def events_done(
        self, device: str, channel: str, event_ids: Iterable[str], error: str | None = None
    ) -> None:
        """Mark events as delivered (or, with `error`, as refused by the server for good)."""
        ids = list(event_ids)
        # One statement per 500 ids (a report batch is at most 500), far below SQLite's limit.
        stmts = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            stmts.append((
                "UPDATE events SET done = 1, error = ? WHERE device = ? AND channel = ?"
                f" AND event_id IN ({marks})", (error, device, channel, *chunk),
            ))  # fmt: skip
        await self._tx(stmts, unchanged)

    async def count_pending_events(self, device: str, channel: str) -> int:
        rows = await self._rows(
            "SELECT count(*) FROM events WHERE device = ? AND channel = ? AND done = 0",
            (device, channel),
        )
        return int(rows[0][0])
