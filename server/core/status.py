"""SMS status codes and the labels the compat API emits (docs/compat-api.md, "Status codes").

simhive's lifecycle is 1 New -> 2 Taken (pulled by the agent, leased) -> 3 Queued (committed into
the agent's journal) -> 6 Sent -> 7 Delivered | 8 Not delivered, with 9-12, 100, 101 as terminal
send failures and 5 for incoming messages. The labels are the vendor's older UI wording because real
clients test for the exact string "New".
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    NEW = 1
    TAKEN = 2
    QUEUED = 3
    RESERVED = 4  # never emitted: a third-party module reads 4 as "sent" (older meaning)
    INCOMING = 5
    SENT = 6
    DELIVERED = 7
    NOT_DELIVERED = 8
    FAILED = 9
    NO_SERVICE = 10
    NULL_PDU = 11
    RADIO_OFF = 12
    NOT_ALLOWED = 100
    NOT_ALLOWED_AT_ALL = 101


LABELS: dict[int, str] = {
    Status.NEW: "New",
    Status.TAKEN: "Taken from Server",
    Status.QUEUED: "Queued for sending",
    Status.RESERVED: "Reserved",
    Status.INCOMING: "Income",
    Status.SENT: "Sent by Phone",
    Status.DELIVERED: "Delivered",
    Status.NOT_DELIVERED: "Sms Not Delivered",
    Status.FAILED: "Not SENT - Generic failure",
    Status.NO_SERVICE: "Not sent - No service",
    Status.NULL_PDU: "Not Sent - Null PDU",
    Status.RADIO_OFF: "Not Sent - Radio off",
    Status.NOT_ALLOWED: "not sent - NOT ALLOWED",
    Status.NOT_ALLOWED_AT_ALL: "not sent - Not Allowed At all",
}

# Terminal send failures an agent may report with a `failed` event (docs/agent-protocol.md).
FAILURE_CODES = frozenset(
    {
        Status.FAILED,
        Status.NO_SERVICE,
        Status.NULL_PDU,
        Status.RADIO_OFF,
        Status.NOT_ALLOWED,
        Status.NOT_ALLOWED_AT_ALL,
    }
)

# Rank used so that a status never moves backwards (a late `sent` after `delivered` is ignored).
RANK: dict[int, int] = {
    Status.NEW: 0,
    Status.TAKEN: 1,
    Status.QUEUED: 2,
    Status.SENT: 3,
    **{code: 4 for code in (Status.DELIVERED, Status.NOT_DELIVERED)},
    **{code: 4 for code in FAILURE_CODES},
    Status.INCOMING: 4,
    Status.RESERVED: 0,
}


def label(code: int) -> str:
    """The compat label of a status code; unknown codes get a neutral text instead of a crash."""
    return LABELS.get(code, f"Status {code}")
