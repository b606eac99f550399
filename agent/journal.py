"""The agent's durable journal (SQLite through aiosqlite, WAL, synchronous=FULL).

It is the agent's memory across crashes (DESIGN.md section 3):

- ``outbox``: messages leased from the server. ``leased`` (written before `commit`, so a crash
  between commit and its answer can be resolved by committing the same lease again) ->
  ``committed`` (ours to send) -> ``dispatching`` (written and synced *before* AT+CMGS) ->
  ``sent`` | ``failed`` | ``unknown``; ``sent`` later becomes ``delivered`` or ``not_delivered``.
  A row still ``dispatching`` at start-up may have reached the network, so it is never resent:
  it becomes ``unknown`` with an outcome-unknown event.
- ``parts``: each sent part's TP-MR and send time, for delivery-report matching.
- ``events``: what the server must hear (``report`` and ``status`` channels), in order, each
  with a stable event id so a resend after a lost answer changes nothing on the server.
- ``inbox``: received SMS keyed by the modem layer's idempotency key, with a forwarded flag.

Every state change and the event it produces are written in one transaction.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from agent.modem.base import IncomingSms

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    device      TEXT NOT NULL,
    id          INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    to_number   TEXT NOT NULL,
    body        TEXT NOT NULL,
    urgent      INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL CHECK (state IN ('leased', 'committed', 'dispatching', 'sent',
                    'failed', 'unknown', 'delivered', 'not_delivered')),
    lease_id    TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    last_error  TEXT,
    PRIMARY KEY (device, id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (device, state, slot, urgent, next_attempt);
CREATE TABLE IF NOT EXISTS parts (
    device      TEXT NOT NULL,
    msg_id      INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    reference   INTEGER NOT NULL,
    sent_at     REAL NOT NULL,
    tp_status   INTEGER,
    PRIMARY KEY (device, msg_id, idx)
);
CREATE INDEX IF NOT EXISTS parts_ref ON parts (device, slot, reference, sent_at);
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    device      TEXT NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('report', 'status')),
    event_id    TEXT NOT NULL,
    body        TEXT NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    UNIQUE (device, channel, event_id)
);
CREATE INDEX IF NOT EXISTS events_pending ON events (device, channel, done, seq);
CREATE TABLE IF NOT EXISTS inbox (
    device      TEXT NOT NULL,
    key         TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    sender      TEXT NOT NULL,
    body        TEXT NOT NULL,
    sent_at     TEXT,
    received_at TEXT NOT NULL,
    parts       INTEGER NOT NULL,
    incomplete  INTEGER NOT NULL,
    forwarded   INTEGER NOT NULL DEFAULT 0,
    sms_id      INTEGER,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (device, key)
);
CREATE INDEX IF NOT EXISTS inbox_pending ON inbox (device, forwarded, seq);
"""

UNKNOWN_AFTER_CRASH = "agent stopped during AT+CMGS; not resent"


class JournalError(RuntimeError):
    """The journal file cannot be opened or is not a simhive journal."""


@dataclass(frozen=True)
class LeasedMessage:
    id: int
    to: str
    body: str
    sim: int
    urgent: bool


@dataclass(frozen=True)
class OutMessage:
    device: str
    id: int
    slot: int
    to: str
    body: str
    urgent: bool
    attempts: int
    next_attempt: float


@dataclass(frozen=True)
class SentPart:
    msg_id: int
    idx: int
    to: str
    sent_at: float
    tp_status: int | None


@dataclass(frozen=True)
class PendingEvent:
    seq: int
    event_id: str
    body: dict[str, Any]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def sent_event(msg_id: int, slot: int, references: Sequence[int], at: float) -> dict[str, Any]:
    return {
        "event_id": f"{msg_id}:sent",
        "sms_id": msg_id,
        "type": "sent",
        "at": iso(at),
        "sim": slot,
        "parts": [{"index": i, "reference": r} for i, r in enumerate(references)],
    }


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        # One writer at a time: multi-statement transactions must not interleave on one connection.
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(str(self.path), isolation_level=None)
        except (OSError, aiosqlite.Error) as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from None
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            # FULL: a COMMIT is on disk before we act on it (e.g. before AT+CMGS, before CMGD).
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(SCHEMA)
        except aiosqlite.Error as exc:
            await db.close()
            raise JournalError(f"{self.path} is not a usable journal: {exc}") from None
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise JournalError("journal is not open")
        return self._db

    async def _tx(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    await self.db.execute(sql, args)
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        async with self._lock, self.db.execute(sql, args) as cur:
            return list(await cur.fetchall())

    # -- start-up ---------------------------------------------------------------------------

    async def recover(self, now: float) -> list[tuple[str, int]]:
        """Turn every `dispatching` row into `unknown` + an outcome-unknown event; never resend."""
        rows = await self._rows("SELECT device, id FROM outbox WHERE state = 'dispatching'")
        stmts: list[tuple[str, Sequence[Any]]] = []
        for device, msg_id in rows:
            stmts += self._final_stmts(
                device, msg_id, "unknown", now, UNKNOWN_AFTER_CRASH,
                {"event_id": f"{msg_id}:unknown", "sms_id": msg_id, "type": "unknown",
                 "at": iso(now), "reason": UNKNOWN_AFTER_CRASH},
            )  # fmt: skip
        if stmts:
            await self._tx(stmts)
        return [(str(d), int(i)) for d, i in rows]

    # -- leases -----------------------------------------------------------------------------

    async def add_leased(
        self, device: str, lease_id: str, messages: Sequence[LeasedMessage], now: float
    ) -> list[int]:
        """Journal a pull answer before committing it; returns the ids to commit.

        A message already owned (committed before, e.g. a commit answer was lost and the server
        leased it again) is committed again but keeps its row; one already dispatched is not
        committed again, so it can never be sent twice.
        """
        stmts: list[tuple[str, Sequence[Any]]] = []
        for m in messages:
            stmts.append((
                "INSERT INTO outbox (device, id, slot, to_number, body, urgent, state, lease_id,"
                " created, updated) VALUES (?, ?, ?, ?, ?, ?, 'leased', ?, ?, ?)"
                " ON CONFLICT (device, id) DO UPDATE SET lease_id = excluded.lease_id,"
                " updated = excluded.updated WHERE state IN ('leased', 'committed')",
                (device, m.id, m.sim, m.to, m.body, int(m.urgent), lease_id, now, now),
            ))  # fmt: skip
        await self._tx(stmts)
        ids = [m.id for m in messages]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self._rows(
            f"SELECT id FROM outbox WHERE device = ? AND lease_id = ? AND id IN ({marks})"
            " AND state IN ('leased', 'committed')",
            (device, lease_id, *ids),
        )
        mine = {int(r[0]) for r in rows}
        return [i for i in ids if i in mine]

    async def apply_commit(
        self, device: str, lease_id: str, committed: Sequence[int], rejected: Sequence[int]
    ) -> None:
        """Keep what the server committed; forget what it rejected (it is no longer ours)."""
        stmts: list[tuple[str, Sequence[Any]]] = []
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
        if stmts:
            await self._tx(stmts)

    async def fail_foreign_slots(self, device: str, slots: Sequence[int], now: float) -> list[int]:
        """Committed messages for a SIM slot this device does not have can never be sent:
        fail them (status 9) rather than keep them forever."""
        marks = ",".join("?" * len(slots))
        rows = await self._rows(
            f"SELECT id, slot FROM outbox WHERE device = ? AND state = 'committed'"
            f" AND slot NOT IN ({marks})",
            (device, *slots),
        )
        for msg_id, slot in rows:
            await self.finish_failed(
                device, int(msg_id), status=9, code="",
                reason=f"SIM slot {slot} does not exist on this device", now=now,
            )  # fmt: skip
        return [int(r[0]) for r in rows]

    async def drop_lease(self, device: str, lease_id: str) -> None:
        """The server does not know this lease any more: its leased rows are not ours."""
        await self._tx([(
            "DELETE FROM outbox WHERE device = ? AND lease_id = ? AND state = 'leased'",
            (device, lease_id),
        )])  # fmt: skip

    async def open_leases(self, device: str) -> dict[str, list[int]]:
        """Leases journaled but not yet resolved by a commit answer (e.g. a crash in between)."""
        rows = await self._rows(
            "SELECT lease_id, id FROM outbox WHERE device = ? AND state = 'leased' ORDER BY id",
            (device,),
        )
        out: dict[str, list[int]] = {}
        for lease_id, msg_id in rows:
            out.setdefault(str(lease_id), []).append(int(msg_id))
        return out

    async def backlog(self, device: str) -> int:
        rows = await self._rows(
            "SELECT count(*) FROM outbox WHERE device = ? AND state IN ('leased', 'committed')",
            (device,),
        )
        return int(rows[0][0])

    # -- dispatch ---------------------------------------------------------------------------

    async def next_due(self, device: str, slot: int, now: float) -> OutMessage | None:
        """The next message for a SIM: urgent first, then the oldest (compat-api 9)."""
        rows = await self._rows(
            "SELECT device, id, slot, to_number, body, urgent, attempts, next_attempt FROM outbox"
            " WHERE device = ? AND slot = ? AND state = 'committed' AND next_attempt <= ?"
            " ORDER BY urgent DESC, id LIMIT 1",
            (device, slot, now),
        )
        return _out(rows[0]) if rows else None

    async def next_wakeup(self, device: str, slots: Sequence[int]) -> float | None:
        """The earliest retry time among committed messages not yet due."""
        marks = ",".join("?" * len(slots))
        rows = await self._rows(
            f"SELECT min(next_attempt) FROM outbox WHERE device = ? AND slot IN ({marks})"
            " AND state = 'committed'",
            (device, *slots),
        )
        v = rows[0][0]
        return float(v) if v is not None else None

    async def begin_dispatch(self, device: str, msg_id: int, now: float) -> bool:
        """Mark before AT+CMGS; on disk by the time this returns (synchronous=FULL).

        False if the row was not `committed` (then it must not be sent).
        """
        async with self._lock:
            cur = await self.db.execute(
                "UPDATE outbox SET state = 'dispatching', attempts = attempts + 1, updated = ?"
                " WHERE device = ? AND id = ? AND state = 'committed'",
                (now, device, msg_id),
            )
            return cur.rowcount == 1

    async def finish_sent(
        self, device: str, msg_id: int, slot: int, references: Sequence[int], sent_at: float
    ) -> None:
        """Sent: one TP-MR per part. A backend gives -1 for a part the modem confirmed without
        a reference; it is kept as -1, so no report can match it and the message stays sent."""
        stmts: list[tuple[str, Sequence[Any]]] = [
            ("UPDATE outbox SET state = 'sent', updated = ?, last_error = NULL"
             " WHERE device = ? AND id = ?", (sent_at, device, msg_id)),
            ("DELETE FROM parts WHERE device = ? AND msg_id = ?", (device, msg_id)),
        ]  # fmt: skip
        for idx, ref in enumerate(references):
            stmts.append((
                "INSERT INTO parts (device, msg_id, idx, slot, reference, sent_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (device, msg_id, idx, slot, ref, sent_at),
            ))  # fmt: skip
        stmts.append(_event_stmt(device, "report", sent_event(msg_id, slot, references, sent_at)))
        await self._tx(stmts)

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
        event = {"event_id": f"{msg_id}:failed", "sms_id": msg_id, "type": "failed",
                 "at": iso(now), "status": status, "code": code, "reason": reason}  # fmt: skip
        await self._tx(self._final_stmts(device, msg_id, "failed", now, reason, event))

    async def finish_unknown(self, device: str, msg_id: int, reason: str, now: float) -> None:
        event = {"event_id": f"{msg_id}:unknown", "sms_id": msg_id, "type": "unknown",
                 "at": iso(now), "reason": reason}  # fmt: skip
        await self._tx(self._final_stmts(device, msg_id, "unknown", now, reason, event))

    @staticmethod
    def _final_stmts(
        device: str, msg_id: int, state: str, now: float, reason: str, event: dict[str, Any]
    ) -> list[tuple[str, Sequence[Any]]]:
        return [
            ("UPDATE outbox SET state = ?, last_error = ?, updated = ? WHERE device = ? AND id = ?",
             (state, reason, now, device, msg_id)),
            _event_stmt(device, "report", event),
        ]  # fmt: skip

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

    # -- delivery reports -------------------------------------------------------------------

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

    async def set_part_status(
        self, device: str, msg_id: int, idx: int, tp_status: int
    ) -> list[int | None]:
        """Record a part's TP-ST; returns every part's status of that message, in part order."""
        await self._tx([(
            "UPDATE parts SET tp_status = ? WHERE device = ? AND msg_id = ? AND idx = ?",
            (tp_status, device, msg_id, idx),
        )])  # fmt: skip
        rows = await self._rows(
            "SELECT tp_status FROM parts WHERE device = ? AND msg_id = ? ORDER BY idx",
            (device, msg_id),
        )
        return [r[0] for r in rows]

    async def finish_delivery(
        self, device: str, msg_id: int, delivered: bool, now: float, detail: str = ""
    ) -> bool:
        """sent -> delivered | not_delivered with its event; False if it was already final."""
        state = "delivered" if delivered else "not_delivered"
        event: dict[str, Any] = {"event_id": f"{msg_id}:{state}", "sms_id": msg_id,
                                 "type": state, "at": iso(now)}  # fmt: skip
        if detail:
            event["reason"] = detail
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                cur = await self.db.execute(
                    "UPDATE outbox SET state = ?, updated = ? WHERE device = ? AND id = ?"
                    " AND state = 'sent'",
                    (state, now, device, msg_id),
                )
                changed = cur.rowcount == 1
                if changed:
                    await self.db.execute(*_event_stmt(device, "report", event))
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")
        return changed

    # -- events to the server ---------------------------------------------------------------

    async def add_event(self, device: str, channel: str, event: dict[str, Any]) -> None:
        await self._tx([_event_stmt(device, channel, event)])

    async def pending_events(self, device: str, channel: str, limit: int) -> list[PendingEvent]:
        rows = await self._rows(
            "SELECT seq, event_id, body FROM events WHERE device = ? AND channel = ? AND done = 0"
            " ORDER BY seq LIMIT ?",
            (device, channel, limit),
        )
        return [PendingEvent(int(s), str(e), json.loads(b)) for s, e, b in rows]

    async def events_done(
        self, device: str, channel: str, event_ids: Iterable[str], error: str | None = None
    ) -> None:
        """Mark events as delivered (or, with `error`, as refused by the server for good)."""
        ids = list(event_ids)
        # One statement per batch (batches are at most 500 ids, far below SQLite's limit).
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            await self._tx([(
                "UPDATE events SET done = 1, error = ? WHERE device = ? AND channel = ?"
                f" AND event_id IN ({marks})", (error, device, channel, *chunk),
            )])  # fmt: skip

    async def count_pending_events(self, device: str, channel: str) -> int:
        rows = await self._rows(
            "SELECT count(*) FROM events WHERE device = ? AND channel = ? AND done = 0",
            (device, channel),
        )
        return int(rows[0][0])

    # -- inbox ------------------------------------------------------------------------------

    async def add_incoming(self, device: str, sms: IncomingSms) -> bool:
        """Store a received SMS once per key; True if it is new."""
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                cur = await self.db.execute(
                    "INSERT INTO inbox (device, key, slot, sender, body, sent_at, received_at,"
                    " parts, incomplete, seq) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                    " coalesce(max(seq), 0) + 1 FROM inbox WHERE device = ?"
                    " ON CONFLICT (device, key) DO NOTHING",
                    (
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
                    ),
                )
                new = cur.rowcount == 1
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")
        return new

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
        if accepted:
            await self._tx([(
                "UPDATE inbox SET forwarded = 1, sms_id = ? WHERE device = ? AND key = ?",
                (sms_id, device, key),
            ) for key, sms_id in accepted])  # fmt: skip

    async def mark_refused(self, device: str, keys: Sequence[str]) -> None:
        """The server answered but did not accept these: keep them, stop offering them."""
        if keys:
            await self._tx([(
                "UPDATE inbox SET forwarded = -1 WHERE device = ? AND key = ?", (device, k),
            ) for k in keys])  # fmt: skip

    async def prune(self, before: float, *, keep_events: int = 10000) -> int:
        """Forget finished history older than `before` (unix time); returns rows deleted.

        Only rows nothing depends on any more: messages in a final state whose report events
        the server has accepted, with their parts; forwarded SMS (their keys guard against a
        re-read only while the modem might still hold them); and accepted events beyond the
        newest `keep_events`. Open work (leased, committed, dispatching, sent) is never touched.
        """
        final = "('delivered', 'not_delivered', 'failed', 'unknown')"
        stmts: list[tuple[str, Sequence[Any]]] = [
            (f"DELETE FROM parts WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.device ="
             f" parts.device AND o.id = parts.msg_id AND o.state IN {final} AND o.updated < ?)",
             (before,)),
            (f"DELETE FROM outbox WHERE state IN {final} AND updated < ? AND NOT EXISTS"
             " (SELECT 1 FROM events e WHERE e.device = outbox.device AND e.channel = 'report'"
             " AND e.done = 0 AND e.event_id LIKE outbox.id || ':%')", (before,)),
            ("DELETE FROM inbox WHERE forwarded != 0 AND julianday(received_at) <"
             " julianday(?, 'unixepoch')", (before,)),
            ("DELETE FROM events WHERE done = 1 AND seq <"
             " (SELECT coalesce(max(seq), 0) FROM events) - ?", (keep_events,)),
        ]  # fmt: skip
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            deleted = 0
            try:
                for sql, args in stmts:
                    cur = await self.db.execute(sql, args)
                    deleted += max(0, cur.rowcount)
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")
        return deleted

    async def is_forwarded(self, device: str, key: str) -> bool:
        rows = await self._rows(
            "SELECT forwarded FROM inbox WHERE device = ? AND key = ?", (device, key)
        )
        return bool(rows and rows[0][0] == 1)


def _event_stmt(device: str, channel: str, event: dict[str, Any]) -> tuple[str, Sequence[Any]]:
    # OR IGNORE: the same event id twice (e.g. a repeated delivery report) is one event.
    return (
        "INSERT OR IGNORE INTO events (device, channel, event_id, body) VALUES (?, ?, ?, ?)",
        (device, channel, str(event["event_id"]), json.dumps(event, separators=(",", ":"))),
    )


def _out(r: aiosqlite.Row) -> OutMessage:
    return OutMessage(
        device=str(r[0]),
        id=int(r[1]),
        slot=int(r[2]),
        to=str(r[3]),
        body=str(r[4]),
        urgent=bool(r[5]),
        attempts=int(r[6]),
        next_attempt=float(r[7]),
    )
