"""What the journal hands out, and the report events it writes (docs/agent-protocol.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

UNKNOWN_AFTER_CRASH = "agent stopped during AT+CMGS; not resent"

Statement = tuple[str, Sequence[Any]]
# One encoder for every event: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class LeasedMessage:
    id: int
    to: str
    body: str
    sim: int
    urgent: bool
    pool: str | None = None  # the pool it was leased from; None: pinned to its SIM


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
    # A pool message not yet committed: the dispatcher claims it (commits this lease's id)
    # just before AT+CMGS, and sends it only if the server says it is still this device's.
    lease_id: str | None = None
    claimed: bool = True


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
    raw: str  # the event's JSON as journaled: sent on as it is, not decoded and encoded again

    @cached_property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.raw)
        return body


@dataclass(frozen=True)
class HeldReport:
    """A status report journaled while no sent part matched it."""

    seq: int
    slot: int
    reference: int
    recipient: str
    tp_status: int
    received_at: float


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def sent_event(msg_id: int, slot: int, references: Sequence[int], at: float) -> dict[str, Any]:
    return {
        "event_id": f"{msg_id}:sent",
        "sms_id": msg_id,
        "type": "sent",
        "at": iso(at),
        "sim": slot,
        # UNKNOWN_REFERENCE (-1) is null on the wire: the part was sent without a TP-MR.
        "parts": [
            {"index": i, "reference": r if 0 <= r <= 255 else None}
            for i, r in enumerate(references)
        ],
    }


def unknown_event(msg_id: int, reason: str, at: float) -> dict[str, Any]:
    return {"event_id": f"{msg_id}:unknown", "sms_id": msg_id, "type": "unknown",
            "at": iso(at), "reason": reason}  # fmt: skip


def event_stmt(device: str, channel: str, event: dict[str, Any]) -> Statement:
    # OR IGNORE: the same event id twice (e.g. a repeated delivery report) is one event.
    return (
        "INSERT OR IGNORE INTO events (device, channel, event_id, body) VALUES (?, ?, ?, ?)",
        (device, channel, str(event["event_id"]), _encode(event)),
    )


def final_stmts(
    device: str, msg_id: int, state: str, now: float, reason: str, event: dict[str, Any]
) -> list[Statement]:
    return [
        ("UPDATE outbox SET state = ?, last_error = ?, updated = ? WHERE device = ? AND id = ?",
         (state, reason, now, device, msg_id)),
        event_stmt(device, "report", event),
    ]  # fmt: skip
