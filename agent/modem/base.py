"""The boundary between the agent's runtime and a modem backend (AT over pyserial, or Gammu).

The dispatcher, the sync loop and the tests speak only these types, so a backend can be swapped
without touching them. Everything here is plain data; backends live in their own modules.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class SendOutcome(enum.Enum):
    """How a failed submit should be treated by the dispatcher."""

    RETRY = "retry"  # transient (e.g. +CMS ERROR 41/42/47/192/194/314/331/332/500, timeout)
    PERMANENT = "permanent"  # will fail again with the same input (bad number, barred, bad PDU)
    UNKNOWN = "unknown"  # the submit may or may not have reached the network (link lost mid-send)


@dataclass(frozen=True)
class ModemIdentity:
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    imei: str = ""
    serial: str = ""  # USB serial or host id where known


@dataclass(frozen=True)
class SimInfo:
    """What the agent reports per SIM slot. Unknown values are None, never invented."""

    slot: int  # 0-based; compat `sim` 0 = slot 1
    present: bool = True
    active: bool = True  # False on a single-standby dual-SIM modem for the slot not selected
    iccid: str | None = None
    imsi: str | None = None
    number: str | None = None  # own number (AT+CNUM or configuration), E.164 where known
    operator: str | None = None  # serving network, long name
    operator_code: str | None = None  # MCCMNC of the serving network, e.g. "26201"
    carrier: str | None = None  # SIM brand (SPN) if known, else operator
    country_iso: str | None = None  # lowercase ISO 3166 alpha-2 from the network MCC
    registered: bool = False
    roaming: bool = False
    signal_dbm: int | None = None


# The TP-MR of a part the modem confirmed without a readable reference (`+CMGS:` with line
# noise, or nothing): the part was sent, but no status report can be matched to it. Kept as -1
# (no TP-MR is negative) in the journal, so a report's MR 0-255 never equals it; sent to the
# server as null.
UNKNOWN_REFERENCE = -1


@dataclass(frozen=True)
class SendResult:
    """A message handed to the network: one TP-MR per part (0-255, or UNKNOWN_REFERENCE), in
    part order."""

    references: list[int]
    encoding: str  # "gsm7" | "ucs2" | "8bit"
    sent_at: datetime


class SendError(Exception):
    """A submit that failed; `status` is the compat status code to report if it is final."""

    def __init__(
        self,
        message: str,
        *,
        outcome: SendOutcome,
        status: int = 9,
        cms: int | None = None,
        cme: int | None = None,
        parts_sent: int = 0,
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.status = status
        self.cms = cms
        self.cme = cme
        self.parts_sent = parts_sent  # parts that got a reference before the failure


@dataclass(frozen=True)
class IncomingSms:
    """One received SMS; multipart messages are delivered once, reassembled."""

    slot: int
    sender: str
    text: str
    sent_at: datetime | None  # SC timestamp (aware)
    received_at: datetime
    parts: int = 1
    incomplete: bool = False  # some parts never arrived before the reassembly timeout
    key: str = ""  # idempotency key: stable across re-reads of the same stored message(s)
    storage: list[tuple[str, int]] = field(default_factory=list)  # (memory, index) to delete


@dataclass(frozen=True)
class DeliveryReport:
    slot: int
    reference: int  # TP-MR of the submitted part
    recipient: str
    status: int  # TP-ST
    sc_timestamp: datetime | None
    discharge_time: datetime | None


class ModemState(enum.Enum):
    CONNECTING = "connecting"
    READY = "ready"
    DEGRADED = "degraded"  # answers, but e.g. not registered or SIM missing
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class StateChange:
    state: ModemState
    reason: str = ""


ModemEvent = IncomingSms | DeliveryReport | StateChange
EventHandler = Callable[[ModemEvent], Awaitable[None]]


class Modem(Protocol):
    """One physical modem (one port), with one or two SIM slots.

    Incoming SMS are handed to the event handler; the backend deletes them from the modem only
    after the handler returned without raising (the agent journals them first).
    """

    identity: ModemIdentity

    @property
    def slots(self) -> list[int]: ...

    @property
    def state(self) -> ModemState: ...

    async def start(self, on_event: EventHandler) -> None:
        """Open, initialise, sweep stored messages, and begin supervision."""

    async def stop(self) -> None: ...

    async def sim_info(self) -> list[SimInfo]:
        """Fresh info for every slot (reads the modem; cheap for the active slot)."""

    async def send(
        self, number: str, text: str, *, slot: int = 0, status_report: bool = True
    ) -> SendResult:
        """Submit all parts; raises SendError. Switches SIM first on single-standby modems."""
