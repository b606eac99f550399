"""Sent parts, their status reports, and reports still waiting for their part."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from simhive.agent.journal.base import JournalBase, run_statements
from simhive.agent.journal.loads import unchanged
from simhive.agent.journal.records import HeldReport, SentPart, event_stmt, iso, unknown_event

# Given every part's TP-ST of a message (None = no report yet): the final state to move it to
# ("delivered" | "not_delivered") with a detail for the event, or None to leave it at "sent".
Decide = Callable[[list[int | None]], tuple[str | None, str]]


class DeliveryJournal(JournalBase):
    async def parts_by_reference(
        self, device: str, slot: int, reference: int, since: float
    ) -> list[SentPart]:
        """Parts with this TP-MR sent since `since`, most recent first."""
        rows = await self._rows(
            "SELECT p.msg_id, p.idx, o.to_number, p.sent_at, p.tp_status FROM parts p"
            " JOIN outbox o ON o.device = p.device AND o.id = p.msg_id"
            " WHERE p.device = ? AND p.slot = ? AND p.reference = ? AND p.sent_at >= ?"
            " ORDER BY p.sent_at DESC, p.msg_id DESC",
            (device, slot, reference & 0xFF, since),
        )
        return [SentPart(int(a), int(b), str(c), float(d), e) for a, b, c, d, e in rows]

    async def apply_report(
        self,
        device: str,
        msg_id: int,
        idx: int,
        tp_status: int,
        decide: Decide,
        now: float,
        *,
        held_seq: int | None = None,
    ) -> tuple[list[int | None], str | None]:
        """Record a part's TP-ST and, if `decide` says so, the message's final state with its
        event, in one write (a held report is forgotten in the same one).

        Returns every part's status in part order and the new state (None if unchanged, also
        when the message was already final)."""

        def op(conn: sqlite3.Connection) -> tuple[list[int | None], str | None]:
            conn.execute(
                "UPDATE parts SET tp_status = ? WHERE device = ? AND msg_id = ? AND idx = ?",
                (tp_status, device, msg_id, idx),
            )
            if held_seq is not None:
                conn.execute("DELETE FROM held_reports WHERE seq = ?", (held_seq,))
            statuses = [r[0] for r in conn.execute(
                "SELECT tp_status FROM parts WHERE device = ? AND msg_id = ? ORDER BY idx",
                (device, msg_id),
            )]  # fmt: skip
            state, detail = decide(statuses)
            if state is None or not _finish(conn, device, msg_id, state, now, detail):
                return statuses, None
            return statuses, state

        return await self._write(op, unchanged)  # parts, and sent -> (not) delivered

    async def finish_delivery(
        self, device: str, msg_id: int, delivered: bool, now: float, detail: str = ""
    ) -> bool:
        """sent -> delivered | not_delivered with its event; False if it was already final."""
        state = "delivered" if delivered else "not_delivered"
        return await self._write(
            lambda conn: _finish(conn, device, msg_id, state, now, detail), unchanged
        )

    # -- reports waiting for their part -----------------------------------------------------

    async def hold_report(
        self, device: str, slot: int, reference: int, recipient: str, tp_status: int, at: float
    ) -> None:
        """On disk before this returns, so before the modem acks or deletes the report."""
        await self._tx([(
            "INSERT INTO held_reports (device, slot, reference, recipient, tp_status,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?)",
            (device, slot, reference & 0xFF, recipient, tp_status, at),
        )], unchanged)  # fmt: skip

    async def held_reports(self, device: str) -> list[HeldReport]:
        rows = await self._rows(
            "SELECT seq, slot, reference, recipient, tp_status, received_at FROM held_reports"
            " WHERE device = ? ORDER BY seq",
            (device,),
        )
        return [HeldReport(int(a), int(b), int(c), str(d), int(e), float(f))
                for a, b, c, d, e, f in rows]  # fmt: skip

    async def drop_held(self, seqs: Sequence[int]) -> None:
        await self._tx([("DELETE FROM held_reports WHERE seq = ?", (s,)) for s in seqs], unchanged)

    # -- no report ever ---------------------------------------------------------------------

    async def expire_unreported(
        self, device: str, sent_before: float, now: float, why: str
    ) -> list[int]:
        """Messages still "sent" (no final report for every part) since before `sent_before`
        become outcome-unknown with an event: their reports are not coming any more."""

        def op(conn: sqlite3.Connection) -> list[int]:
            ids = [int(r[0]) for r in conn.execute(
                "SELECT id FROM outbox WHERE device = ? AND state = 'sent' AND updated < ?"
                " ORDER BY +id", (device, sent_before),  # +id: by the due index (open_leases)
            )]  # fmt: skip
            for msg_id in ids:
                parts, done, blind = conn.execute(
                    "SELECT count(*), count(tp_status), count(CASE WHEN reference < 0 THEN 1 END)"
                    " FROM parts WHERE device = ? AND msg_id = ?",
                    (device, msg_id),
                ).fetchone()
                reason = f"{why} ({done} of {parts} part report(s) received"
                # A part the modem confirmed without a readable MR can never match a report.
                reason += f"; {blind} part(s) sent without a reference)" if blind else ")"
                run_statements(conn, [
                    ("UPDATE outbox SET state = 'unknown', last_error = ?, updated = ?"
                     " WHERE device = ? AND id = ?", (reason, now, device, msg_id)),
                    event_stmt(device, "report", unknown_event(msg_id, reason, now)),
                ])  # fmt: skip
            return ids

        return await self._write(op)


def _finish(
    conn: sqlite3.Connection, device: str, msg_id: int, state: str, now: float, detail: str
) -> bool:
    cur = conn.execute(
        "UPDATE outbox SET state = ?, updated = ? WHERE device = ? AND id = ? AND state = 'sent'",
        (state, now, device, msg_id),
    )
    if cur.rowcount != 1:
        return False
    event: dict[str, Any] = {"event_id": f"{msg_id}:{state}", "sms_id": msg_id, "type": state,
                             "at": iso(now)}  # fmt: skip
    if detail:
        event["reason"] = detail
    conn.execute(*event_stmt(device, "report", event))
    return True
