"""The outbox: leased -> committed -> dispatching -> sent | failed | unknown.

A pinned message is committed right after its pull. A pool message stays `leased` until its
SIM is about to send it: the dispatcher then commits (claims) that one id and, if the server
says it is still this device's, marks it `dispatching` in one step (commit = claim, see
docs/routing.md). So an agent that dies holds no committed pool message it has not started:
its leases expire and the messages leave on other SIMs.

Which writes wait for the disk (docs/reliability.md):
- the pull answer (`leased`) before `commit` is called, so a crash in between is resolved by
  committing the same lease again (a pinned message at the next start, a pool message when it
  is claimed: a commit answered before, whose answer was lost, answers "committed" again);
- `dispatching` before AT+CMGS, so a crash mid-submit becomes outcome-unknown, never a resend;
- an outcome before it is reported: report events are read from committed rows only, so this
  holds for every write. `finish_sent_nowait` lets the dispatcher move on while its "sent"
  rides along with the next commit (at the latest the next message's `dispatching` mark); if
  that write is lost in a crash, the row is still `dispatching` and becomes outcome-unknown.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from typing import Any

from simhive.agent.journal.base import JournalBase, run_statements
from simhive.agent.journal.loads import unchanged
from simhive.agent.journal.records import (
    UNKNOWN_AFTER_CRASH,
    LeasedMessage,
    OutMessage,
    Statement,
    event_stmt,
    final_stmts,
    iso,
    sent_event,
    unknown_event,
)


class OutboxJournal(JournalBase):
    # -- start-up ---------------------------------------------------------------------------

    async def recover(self, now: float) -> list[tuple[str, int]]:
        """Turn every `dispatching` row into `unknown` + an outcome-unknown event; never resend."""

        def op(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            rows = conn.execute("SELECT device, id FROM outbox WHERE state = 'dispatching'")
            found = [(str(d), int(i)) for d, i in rows.fetchall()]
            for device, msg_id in found:
                run_statements(conn, final_stmts(
                    device, msg_id, "unknown", now, UNKNOWN_AFTER_CRASH,
                    unknown_event(msg_id, UNKNOWN_AFTER_CRASH, now),
                ))  # fmt: skip
            return found

        return await self._write(op)

    # -- leases -----------------------------------------------------------------------------

    async def add_leased(
        self, device: str, lease_id: str, messages: Sequence[LeasedMessage], now: float
    ) -> list[int]:
        """Journal a pull answer before committing it; returns the ids to commit.

        A message already owned (committed before, e.g. a commit answer was lost and the server
        leased it again) is committed again but keeps its row; one already dispatched is not
        committed again, so it can never be sent twice.
        """

        added: list[int] = []  # slots of the new rows (the SIMs' loads grow by one each)

        def op(conn: sqlite3.Connection) -> list[int]:
            mine = []
            added.clear()  # a group that failed runs its ops again
            for m in messages:
                row = (device, m.id, m.sim, m.to, m.body, int(m.urgent), lease_id, now, now)
                cur = conn.execute(
                    "INSERT INTO outbox (device, id, slot, to_number, body, urgent, state,"
                    " lease_id, created, updated, pool)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'leased', ?, ?, ?, ?)"
                    " ON CONFLICT (device, id) DO NOTHING",
                    (*row, m.pool),
                )
                if cur.rowcount == 1:
                    added.append(m.sim)
                    mine.append(m.id)
                    continue
                # Known already: one still held is re-leased (committed again, one row kept).
                cur = conn.execute(
                    "UPDATE outbox SET lease_id = ?, updated = ? WHERE device = ? AND id = ?"
                    " AND state IN ('leased', 'committed')",
                    (lease_id, now, device, m.id),
                )
                if cur.rowcount == 1:
                    mine.append(m.id)
            return mine

        def after(_mine: list[int]) -> None:
            for slot in added:
                self.loads.add(device, slot, 1, 1)

        return await self._write(op, after) if messages else []

    async def apply_commit(
        self, device: str, lease_id: str, committed: Sequence[int], rejected: Sequence[int]
    ) -> None:
        """Keep what the server committed; forget what it rejected (it is no longer ours)."""
        stmts: list[Statement] = []
        for i in committed:
            stmts.append((
                "UPDATE outbox SET state = 'committed' WHERE device = ? AND id = ?"
                " AND state = 'leased'", (device, i),
            ))  # fmt: skip
        for i in rejected:
            stmts.append((
                "DELETE FROM outbox WHERE device = ? AND id = ? AND lease_id = ?"
                " AND state = 'leased'", (device, i, lease_id),
            ))  # fmt: skip
        # leased -> committed leaves the loads; a rejected row leaves them (read them again).
        await self._tx(stmts, self.loads.forget_after(device) if rejected else unchanged)

    async def fail_foreign_slots(self, device: str, slots: Sequence[int], now: float) -> list[int]:
        """Committed messages for a SIM slot this device does not have can never be sent:
        fail them (status 9) rather than keep them forever."""
        marks = ",".join("?" * len(slots))

        def op(conn: sqlite3.Connection) -> list[int]:
            rows = conn.execute(
                f"SELECT id, slot FROM outbox WHERE device = ? AND state = 'committed'"
                f" AND slot NOT IN ({marks})",
                (device, *slots),
            ).fetchall()
            for msg_id, slot in rows:
                reason = f"SIM slot {slot} does not exist on this device"
                run_statements(conn, _failed_stmts(device, int(msg_id), 9, "", reason, now))
            return [int(r[0]) for r in rows]

        return await self._write(op)

    async def drop_lease(self, device: str, lease_id: str) -> None:
        """The server does not know this lease any more: its leased rows are not ours."""
        await self._tx([(
            "DELETE FROM outbox WHERE device = ? AND lease_id = ? AND state = 'leased'",
            (device, lease_id),
        )])  # fmt: skip

    async def open_leases(self, device: str, *, pinned_only: bool = False) -> dict[str, list[int]]:
        """Leases journaled but not yet resolved by a commit answer (a crash in between, or
        pool messages waiting for their claim); `pinned_only`: their pinned ids alone."""
        rows = await self._rows(
            "SELECT lease_id, id FROM outbox WHERE device = ? AND state = 'leased'"
            + (" AND pool IS NULL" if pinned_only else "")
            # +id: sorting the few leased rows beats walking the primary key through the
            # device's whole history to get them in order (SQLite's choice for `ORDER BY id`).
            + " ORDER BY +id",
            (device,),
        )
        out: dict[str, list[int]] = {}
        for lease_id, msg_id in rows:
            out.setdefault(str(lease_id), []).append(int(msg_id))
        return out

    async def backlog(self, device: str) -> int:
        """Messages held for the device and not started: leased, committed, releasing."""
        rows = await self._rows(
            "SELECT count(*) FROM outbox WHERE device = ?"
            " AND state IN ('leased', 'committed', 'releasing')",
            (device,),
        )
        return int(rows[0][0])

    # -- dispatch ---------------------------------------------------------------------------

    async def next_due(
        self, device: str, slot: int, now: float, *, claimable: bool = False
    ) -> OutMessage | None:
        """The next message for a SIM: urgent first, then the oldest (docs/agent.md).
        `claimable`: leased pool messages count too (the caller claims them before sending)."""
        ready = _READY_CLAIMABLE if claimable else "state = 'committed'"
        rows = await self._rows(
            "SELECT device, id, slot, to_number, body, urgent, attempts, next_attempt,"
            f" lease_id, state FROM outbox WHERE device = ? AND slot = ? AND {ready}"
            " AND next_attempt <= ? ORDER BY urgent DESC, id LIMIT 1",
            (device, slot, now),
        )
        return _out(rows[0]) if rows else None

    async def next_wakeup(
        self, device: str, slots: Sequence[int], *, claimable: bool = False
    ) -> float | None:
        """The earliest retry time among messages not yet due (see next_due)."""
        marks = ",".join("?" * len(slots))
        ready = _READY_CLAIMABLE if claimable else "state = 'committed'"
        rows = await self._rows(
            f"SELECT min(next_attempt) FROM outbox WHERE device = ? AND slot IN ({marks})"
            f" AND {ready}",
            (device, *slots),
        )
        v = rows[0][0]
        return float(v) if v is not None else None

    async def begin_dispatch(
        self,
        device: str,
        msg_id: int,
        now: float,
        *,
        claimed_lease: str | None = None,
        slot: int | None = None,
    ) -> bool:
        """Mark before AT+CMGS; on disk by the time this returns (synchronous=FULL).

        False if the row was not `committed` (then it must not be sent). `claimed_lease`: the
        server has just committed this pool message under that lease (the claim), so a row
        still `leased` under it may go too; one meanwhile marked `releasing`, or re-leased
        under another lease, may not. `slot`: the message's SIM, whose load this lowers by one
        (unknown: the loads are read again).
        """

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE outbox SET state = 'dispatching', attempts = attempts + 1, updated = ?"
                " WHERE device = ? AND id = ? AND (state = 'committed'"
                " OR (state = 'leased' AND pool IS NOT NULL AND lease_id = ?))",
                (now, device, msg_id, claimed_lease),
            )
            return cur.rowcount == 1

        def after(marked: bool) -> None:
            if not marked:
                return
            if slot is None:
                self.loads.forget(device)
            else:
                self.loads.add(device, slot, -1, -1)  # committed or leased -> dispatching

        return await self._write(op, after)

    async def next_claimable(self, msg: OutMessage, now: float, limit: int) -> list[OutMessage]:
        """The leased pool messages of msg's SIM and lease (one commit call takes one lease),
        in send order (urgent first, then oldest), msg left out: the ones its claim may take
        along."""
        rows = await self._rows(
            "SELECT device, id, slot, to_number, body, urgent, attempts, next_attempt,"
            " lease_id, state FROM outbox WHERE device = ? AND slot = ? AND state = 'leased'"
            " AND pool IS NOT NULL AND lease_id = ? AND next_attempt <= ? AND id != ?"
            " ORDER BY urgent DESC, id LIMIT ?",
            (msg.device, msg.slot, msg.lease_id, now, msg.id, limit),
        )
        return [_out(r) for r in rows]

    def settle_claims_nowait(
        self,
        device: str,
        committed: Sequence[tuple[int, str | None]],
        rejected: Sequence[tuple[int, str | None]],
    ) -> asyncio.Future[None]:
        """Claims answered: (id, lease) the server committed become ours to send; those it
        rejected are not ours any more. Rows meanwhile marked `releasing`, or leased again
        under another lease, are left alone. On disk with the next commit (the future)."""
        stmts: list[Statement] = [
            ("UPDATE outbox SET state = 'committed' WHERE device = ? AND id = ?"
             " AND state = 'leased' AND pool IS NOT NULL AND lease_id = ?", (device, i, lease))
            for i, lease in committed
        ]  # fmt: skip
        stmts += [
            ("DELETE FROM outbox WHERE device = ? AND id = ? AND state = 'leased'"
             " AND pool IS NOT NULL AND lease_id = ?", (device, i, lease))
            for i, lease in rejected
        ]  # fmt: skip
        after = self.loads.forget_after(device) if rejected else unchanged
        return self._write_nowait(lambda conn: run_statements(conn, stmts), after)

    async def defer_claims(self, device: str, slots: Sequence[int], until: float) -> None:
        """No answer to a claim (the server is away): the SIMs' leased pool messages are
        claimed again from `until` on; kept meanwhile, since the server may have committed
        one whose answer was lost, and only the server's answer may let one go."""
        marks = ",".join("?" * len(slots))
        await self._tx([(
            f"UPDATE outbox SET next_attempt = ? WHERE device = ? AND slot IN ({marks})"
            " AND state = 'leased' AND pool IS NOT NULL", (until, device, *slots),
        )])  # fmt: skip

    def finish_sent_nowait(
        self, device: str, msg_id: int, slot: int, references: Sequence[int], sent_at: float
    ) -> asyncio.Future[None]:
        """Sent: one TP-MR per part. Queued now, on disk with the next commit (the future).

        A backend gives UNKNOWN_REFERENCE (-1) for a part the modem confirmed without a
        readable reference; it is kept as -1, so no report (MR 0-255) can match it, the event
        says null, and the message ends by the no-report timeout like one whose report was lost.
        """
        stmts: list[Statement] = [
            ("UPDATE outbox SET state = 'sent', updated = ?, last_error = NULL"
             " WHERE device = ? AND id = ?", (sent_at, device, msg_id)),
        ]  # fmt: skip
        # OR REPLACE: a message reaches `sent` once (only a `dispatching` row is sent, and
        # nothing leads back there), so there are no parts of an earlier try to clear first.
        for idx, ref in enumerate(references):
            stmts.append((
                "INSERT OR REPLACE INTO parts (device, msg_id, idx, slot, reference, sent_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (device, msg_id, idx, slot, ref, sent_at),
            ))  # fmt: skip
        stmts.append(event_stmt(device, "report", sent_event(msg_id, slot, references, sent_at)))
        # dispatching -> sent: no SIM's load changes.
        return self._write_nowait(lambda conn: run_statements(conn, stmts), unchanged)

    async def finish_sent(
        self, device: str, msg_id: int, slot: int, references: Sequence[int], sent_at: float
    ) -> None:
        await self.finish_sent_nowait(device, msg_id, slot, references, sent_at)

    async def finish_retry(
        self, device: str, msg_id: int, next_attempt: float, error: str, now: float
    ) -> None:
        await self._tx([(
            "UPDATE outbox SET state = 'committed', next_attempt = ?, last_error = ?, updated = ?"
            " WHERE device = ? AND id = ? AND state = 'dispatching'",
            (next_attempt, error, now, device, msg_id),
        )])  # fmt: skip

    async def finish_failed(
        self, device: str, msg_id: int, *, status: int, code: str, reason: str, now: float
    ) -> None:
        await self._tx(_failed_stmts(device, msg_id, status, code, reason, now))

    async def finish_unknown(self, device: str, msg_id: int, reason: str, now: float) -> None:
        await self._tx(
            final_stmts(device, msg_id, "unknown", now, reason, unknown_event(msg_id, reason, now))
        )

    async def message_state(self, device: str, msg_id: int) -> str | None:
        rows = await self._rows(
            "SELECT state FROM outbox WHERE device = ? AND id = ?", (device, msg_id)
        )
        return str(rows[0][0]) if rows else None

    async def sent_times(self, device: str, slot: int, since: float) -> list[float]:
        """Send times of the SIM's messages, so per-day caps survive a restart."""
        rows = await self._rows(
            "SELECT min(sent_at) FROM parts WHERE device = ? AND slot = ? AND sent_at >= ?"
            " GROUP BY msg_id ORDER BY 1",
            (device, slot, since),
        )
        return [float(r[0]) for r in rows]


def _failed_stmts(
    device: str, msg_id: int, status: int, code: str, reason: str, now: float
) -> list[Statement]:
    event = {"event_id": f"{msg_id}:failed", "sms_id": msg_id, "type": "failed",
             "at": iso(now), "status": status, "code": code, "reason": reason}  # fmt: skip
    return final_stmts(device, msg_id, "failed", now, reason, event)


# What a dispatcher that claims may pick: committed messages, and leased pool messages.
# (IN first, so the due index serves both states; finished history is never scanned.)
_READY_CLAIMABLE = "state IN ('committed', 'leased') AND (state = 'committed' OR pool IS NOT NULL)"


def _out(r: tuple[Any, ...]) -> OutMessage:
    return OutMessage(
        device=str(r[0]),
        id=int(r[1]),
        slot=int(r[2]),
        to=str(r[3]),
        body=str(r[4]),
        urgent=bool(r[5]),
        attempts=int(r[6]),
        next_attempt=float(r[7]),
        lease_id=None if r[8] is None else str(r[8]),
        claimed=r[9] == "committed",
    )
