"""What the server must hear (`report` and `status` channels), in order, each event once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from simhive.agent.journal.base import JournalBase, run_statements
from simhive.agent.journal.loads import unchanged
from simhive.agent.journal.records import PendingEvent, Statement, event_stmt


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
        await self._tx(_done_stmts(device, channel, event_ids, error), unchanged)

    def events_done_nowait(
        self, device: str, channel: str, done: Iterable[str], refused: Iterable[str], error: str
    ) -> asyncio.Future[None]:
        """events_done of `done`, and of `refused` with `error`, in the next group commit without
        waiting for it (the future): for report events that rode along with a claim, whose
        answer must reach the dispatcher without an fsync first. Lost in a crash, they are
        simply reported again (the server applies an event id once)."""
        stmts = _done_stmts(device, channel, done, None) + _done_stmts(
            device, channel, refused, error
        )
        return self._write_nowait(lambda conn: run_statements(conn, stmts), unchanged)

    async def count_pending_events(self, device: str, channel: str) -> int:
        rows = await self._rows(
            "SELECT count(*) FROM events WHERE device = ? AND channel = ? AND done = 0",
            (device, channel),
        )
        return int(rows[0][0])


def _done_stmts(
    device: str, channel: str, event_ids: Iterable[str], error: str | None
) -> list[Statement]:
    ids = list(event_ids)
    # One statement per 500 ids (a report batch is at most 500), far below SQLite's limit.
    stmts: list[Statement] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        stmts.append((
            "UPDATE events SET done = 1, error = ? WHERE device = ? AND channel = ?"
            f" AND event_id IN ({marks})", (error, device, channel, *chunk),
        ))  # fmt: skip
    return stmts
