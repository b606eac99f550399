"""Per-SIM load and the hand-back of pool messages (docs/agent.md, "SIM pools").

A pool message the agent has leased or committed but not started can go back to its pool when
its SIM stops being ready. Order for never lost, never doubled: the rows are marked ``releasing`` on
disk first (a ``releasing`` row is never dispatched: every dispatch query asks for
``committed``), then the server is asked; ids it lists as released are deleted, ids it keeps
go back to ``committed``. A crash in between leaves them ``releasing`` and the next start asks
again (the call is idempotent). Pinned messages (``pool IS NULL``) are never marked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from simhive.agent.journal.base import JournalBase
from simhive.agent.journal.loads import SlotLoad
from simhive.agent.journal.records import Statement


class ReleaseJournal(JournalBase):
    async def slot_loads(self, device: str) -> dict[int, SlotLoad]:
        """The device's held and queued messages per SIM slot: kept in memory once read
        (agent/journal/loads.py), else one indexed query."""
        known = self.loads.get(device)
        if known is not None:
            return known
        store, kept = self.store, self.loads

        def fetch(conn: sqlite3.Connection) -> dict[int, SlotLoad]:
            rows = conn.execute(
                "SELECT slot, state, count(*) FROM outbox WHERE device = ?"
                " AND state IN ('leased', 'committed', 'releasing') GROUP BY slot, state",
                (device,),
            ).fetchall()
            held: dict[int, int] = {}
            queued: dict[int, int] = {}
            for slot, state, n in rows:
                held[int(slot)] = held.get(int(slot), 0) + int(n)
                if state != "releasing":
                    queued[int(slot)] = queued.get(int(slot), 0) + int(n)
            loads = {s: SlotLoad(held[s], queued.get(s, 0)) for s in held}
            if store.idle:  # kept only when every committed write's change is in it, no more
                kept.keep(device, loads)
            return loads

        return await store.read(fetch)

    async def mark_releasing(
        self, device: str, keep_slots: Sequence[int], reason: str, now: float
    ) -> list[int]:
        """Mark the pool messages not started (leased, waiting for their claim, or committed)
        of every slot NOT in `keep_slots` ``releasing`` (on disk when this returns); returns
        their ids. `keep_slots=[]` marks them all. A claim answered after this finds the row
        `releasing` and does not send it (begin_dispatch)."""
        marks = ",".join("?" * len(keep_slots))
        where = f" AND slot NOT IN ({marks})" if keep_slots else ""

        def op(conn: sqlite3.Connection) -> list[int]:
            args = (device, *keep_slots)
            ids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT id FROM outbox WHERE device = ? AND state IN ('leased', 'committed')"
                    f" AND pool IS NOT NULL{where}",
                    args,
                ).fetchall()
            ]
            if ids:
                conn.execute(
                    "UPDATE outbox SET state = 'releasing', last_error = ?, updated = ?"
                    " WHERE device = ? AND state IN ('leased', 'committed') AND pool IS NOT NULL"
                    + where,
                    (reason, now, *args),
                )
            return ids

        return await self._write(op)

    async def releasing(self, device: str, limit: int) -> list[tuple[int, str]]:
        """Messages waiting to be handed back, oldest first, with the reason they go back."""
        rows = await self._rows(
            "SELECT id, coalesce(last_error, '') FROM outbox WHERE device = ?"
            " AND state = 'releasing' ORDER BY +id LIMIT ?",  # +id: see open_leases
            (device, limit),
        )
        return [(int(i), str(r)) for i, r in rows]

    async def apply_release(
        self, device: str, released: Sequence[int], kept: Sequence[int], now: float
    ) -> None:
        """The server's answer: released ids are no longer ours (forget them, never send);
        kept ids stay ours (committed again, sent when their SIM is ready)."""
        stmts: list[Statement] = []
        for i in released:
            stmts.append((
                "DELETE FROM outbox WHERE device = ? AND id = ? AND state = 'releasing'",
                (device, i),
            ))  # fmt: skip
        for i in kept:
            stmts.append((
                "UPDATE outbox SET state = 'committed', updated = ? WHERE device = ? AND id = ?"
                " AND state = 'releasing'", (now, device, i),
            ))  # fmt: skip
        await self._tx(stmts)
