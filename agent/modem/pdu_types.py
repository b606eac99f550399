"""The values the SMS TPDU codec builds and decodes, and its one error type.

Kept apart so that the field, user-data, encoder and decoder modules share one definition
without importing each other in a circle; callers import them from `agent.modem.pdu`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class PduError(ValueError):
    """A PDU that cannot be built from the given input, or a received PDU that is malformed."""


class Coding(enum.Enum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"
    BIT8 = "8bit"


@dataclass(frozen=True)
class Concat:
    reference: int
    total: int
    seq: int  # 1-based


@dataclass(frozen=True)
class SubmitPdu:
    pdu: bytes  # with the leading SCA field; b"\x00" there means "use the SMSC from AT+CSCA"
    tpdu_length: int  # octets after the SCA field: the <length> of AT+CMGS=<length>
    coding: Coding

    @property
    def hex(self) -> str:
        return self.pdu.hex().upper()


@dataclass(frozen=True)
class Submit:
    destination: str
    status_report: bool
    reject_duplicates: bool
    message_reference: int
    pid: int
    dcs: int
    coding: Coding
    validity_minutes: int | None  # relative VP only; None when absent, absolute or enhanced
    concat: Concat | None
    text: str
    user_data_header: bytes  # as on the air, including its length octet; b"" when absent


@dataclass(frozen=True)
class Deliver:
    smsc: str | None
    sender: str
    pid: int
    dcs: int
    coding: Coding
    sc_timestamp: datetime
    concat: Concat | None
    text: str
    user_data_header: bytes
    status_report_indication: bool


@dataclass(frozen=True)
class StatusReport:
    smsc: str | None
    message_reference: int
    recipient: str
    sc_timestamp: datetime
    discharge_time: datetime
    status: int  # TP-ST, see agent.modem.errors for its classification
