"""Modem error codes and delivery-report statuses, declared once as data.

`+CMS ERROR` (3GPP TS 27.005 section 3.2.5) and `+CME ERROR` (TS 27.007 section 9.2) codes, each
with its meaning, how a failed submit should be treated (retry later, fail now, or a configuration
problem that no retry fixes), and the SMSGateway24 compat status to report when it is final
(docs/compat-api.md). TP-ST values of status reports (TS 23.040 section 9.2.3.15) are
classified as delivered, pending or failed.

The retry split follows what real modems and operators return; codes it does not place are judged by
their meaning in the standards and the comment next to them says why.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from simhive.agent.modem.base import SendError, SendOutcome

# Compat status codes (docs/compat-api.md) a final send failure is reported as.
STATUS_GENERIC_FAILURE = 9
STATUS_NO_SERVICE = 10
STATUS_NULL_PDU = 11
STATUS_RADIO_OFF = 12
STATUS_NOT_ALLOWED = 100
STATUS_DELIVERED = 7
STATUS_NOT_DELIVERED = 8


class ErrorKind(enum.Enum):
    RETRYABLE = "retryable"  # transient: back off and try again, a bounded number of times
    PERMANENT = "permanent"  # the same message will fail the same way: fail it, send the next
    CONFIG = "config"  # the SIM or modem set-up is wrong: no retry helps until someone fixes it


@dataclass(frozen=True)
class ModemError:
    family: str  # "CMS" or "CME"
    code: int
    meaning: str
    kind: ErrorKind
    status: int  # compat status when this error ends the message's life

    @property
    def outcome(self) -> SendOutcome:
        return SendOutcome.RETRY if self.kind is ErrorKind.RETRYABLE else SendOutcome.PERMANENT

    def __str__(self) -> str:
        return f"+{self.family} ERROR: {self.code} ({self.meaning}, {self.kind.value})"


_R, _P, _C = ErrorKind.RETRYABLE, ErrorKind.PERMANENT, ErrorKind.CONFIG
_G, _NS, _NP, _NA = STATUS_GENERIC_FAILURE, STATUS_NO_SERVICE, STATUS_NULL_PDU, STATUS_NOT_ALLOWED

# (code, meaning, kind, compat status)
_CMS_TABLE: list[tuple[int, str, ErrorKind, int]] = [
    # 0-127: RP causes from the network (TS 24.011 section 8.2.5.4).
    (1, "unassigned (unallocated) number", _P, _G),
    (8, "operator determined barring", _P, _G),
    (10, "call barred", _P, _G),
    (21, "short message transfer rejected", _P, _G),
    (27, "destination out of service", _R, _G),  # the far end's link, not the number
    (28, "unidentified subscriber", _P, _G),
    (29, "facility rejected", _P, _G),
    (30, "unknown subscriber", _P, _G),
    (38, "network out of order", _R, _G),  # 24.011 E.2: expected to last a short time
    (41, "temporary failure", _R, _G),
    (42, "congestion", _R, _G),
    (47, "resources unavailable, unspecified", _R, _G),
    (50, "requested facility not subscribed", _P, _G),
    (69, "requested facility not implemented", _P, _G),
    (81, "invalid short message transfer reference value", _P, _G),
    (95, "invalid message, unspecified", _P, _G),
    (96, "invalid mandatory information", _P, _G),
    (97, "message type non-existent or not implemented", _P, _G),
    (98, "message not compatible with short message protocol state", _P, _G),
    (99, "information element non-existent or not implemented", _P, _G),
    (111, "protocol error, unspecified", _P, _G),
    (127, "interworking, unspecified", _P, _G),
    # 128-255: TP causes (TS 23.040 section 9.2.3.22) passed through by the modem.
    (128, "telematic interworking not supported", _P, _G),
    (129, "short message type 0 not supported", _P, _G),
    (130, "cannot replace short message", _P, _G),
    (143, "unspecified TP-PID error", _P, _G),
    (144, "data coding scheme (alphabet) not supported", _P, _G),
    (145, "message class not supported", _P, _G),
    (159, "unspecified TP-DCS error", _P, _G),
    (160, "command cannot be actioned", _P, _G),
    (161, "command unsupported", _P, _G),
    (175, "unspecified TP-command error", _P, _G),
    (176, "TPDU not supported", _P, _NP),
    (192, "SC busy", _R, _G),
    (193, "no SC subscription", _C, _G),
    (194, "SC system failure", _R, _G),
    (195, "invalid SME address", _P, _G),
    (196, "destination SME barred", _P, _G),
    (197, "SM rejected, duplicate SM", _P, _G),
    (198, "TP-VPF not supported", _P, _NP),
    (199, "TP-VP not supported", _P, _NP),
    (208, "SIM SMS storage full", _P, _G),
    (209, "no SMS storage capability in SIM", _C, _G),
    (210, "error in MS", _R, _G),  # a modem-side glitch; a later try usually works
    (211, "memory capacity exceeded", _P, _G),
    (212, "SIM application toolkit busy", _R, _G),
    (213, "SIM data download error", _P, _G),
    (255, "unspecified error cause", _P, _G),
    # 300-511: errors of the modem itself (TS 27.005 section 3.2.5).
    (300, "ME failure", _R, _G),  # modem firmware hiccup; retried with back-off, then given up
    (301, "SMS service of ME reserved", _C, _G),
    (302, "operation not allowed", _C, _G),  # e.g. the modem left in text mode
    (303, "operation not supported", _C, _G),
    (304, "invalid PDU mode parameter", _P, _NP),  # a bug in our PDU builder
    (305, "invalid text mode parameter", _P, _NP),
    (310, "SIM not inserted", _C, _NA),
    (311, "SIM PIN required", _C, _NA),
    (312, "PH-SIM PIN required", _C, _NA),
    (313, "SIM failure", _C, _NA),
    (314, "SIM busy", _R, _G),  # before "SMS Ready" after boot, or during a SIM refresh
    (315, "SIM wrong", _C, _NA),
    (316, "SIM PUK required", _C, _NA),
    (317, "SIM PIN2 required", _C, _NA),
    (318, "SIM PUK2 required", _C, _NA),
    (320, "memory failure", _P, _G),
    (321, "invalid memory index", _P, _G),
    (322, "memory full", _P, _G),
    (330, "SMSC address unknown", _C, _G),  # AT+CSCA is missing
    (331, "no network service", _R, _NS),
    (332, "network timeout", _R, _G),
    (340, "no +CNMA acknowledgement expected", _P, _G),
    (500, "unknown error", _R, _G),
]

_CME_TABLE: list[tuple[int, str, ErrorKind, int]] = [
    (0, "phone failure", _R, _G),
    (1, "no connection to phone", _R, _G),
    (2, "phone-adaptor link reserved", _R, _G),
    (3, "operation not allowed", _C, _G),
    (4, "operation not supported", _C, _G),
    (5, "PH-SIM PIN required", _C, _NA),
    (6, "PH-FSIM PIN required", _C, _NA),
    (7, "PH-FSIM PUK required", _C, _NA),
    (10, "SIM not inserted", _C, _NA),
    (11, "SIM PIN required", _C, _NA),
    (12, "SIM PUK required", _C, _NA),
    (13, "SIM failure", _C, _NA),
    (14, "SIM busy", _R, _G),  # SIM still initialising; python-gsmmodem retries this too
    (15, "SIM wrong", _C, _NA),
    (16, "incorrect password", _C, _NA),
    (17, "SIM PIN2 required", _C, _NA),
    (18, "SIM PUK2 required", _C, _NA),
    (20, "memory full", _P, _G),
    (21, "invalid index", _P, _G),
    (22, "not found", _P, _G),
    (23, "memory failure", _P, _G),
    (24, "text string too long", _P, _NP),
    (25, "invalid characters in text string", _P, _NP),
    (26, "dial string too long", _P, _G),
    (27, "invalid characters in dial string", _P, _G),
    (30, "no network service", _R, _NS),
    (31, "network timeout", _R, _G),
    (32, "network not allowed, emergency calls only", _R, _NS),
    (40, "network personalisation PIN required", _C, _NA),
    (100, "unknown", _R, _G),
    # Vendor codes seen in the field.
    (262, "SIM blocked (vendor)", _C, _NA),  # one reported case was a bad SIM contact
    (515, "device busy (vendor, during start-up)", _R, _G),
]

CMS_ERRORS: dict[int, ModemError] = {
    code: ModemError("CMS", code, meaning, kind, status)
    for code, meaning, kind, status in _CMS_TABLE
}
CME_ERRORS: dict[int, ModemError] = {
    code: ModemError("CME", code, meaning, kind, status)
    for code, meaning, kind, status in _CME_TABLE
}


def cms_error(code: int) -> ModemError:
    """The entry for a `+CMS ERROR: <code>`; codes not in the table are judged by their range."""
    known = CMS_ERRORS.get(code)
    if known is not None:
        return known
    if 0 <= code <= 127:
        meaning = "network (RP) cause"
    elif 128 <= code <= 255:
        meaning = "transfer (TP) cause"
    elif 256 <= code <= 511:
        meaning = "ME error"
    else:
        meaning = "vendor error"
    # Unknown codes are retried: a bounded retry costs a little time, a wrongly final failure
    # loses a message that would have gone through.
    return ModemError("CMS", code, f"unlisted {meaning}", ErrorKind.RETRYABLE, _G)


def cme_error(code: int) -> ModemError:
    """The entry for a `+CME ERROR: <code>`; unknown codes are treated as transient."""
    known = CME_ERRORS.get(code)
    if known is not None:
        return known
    return ModemError("CME", code, "unlisted equipment error", ErrorKind.RETRYABLE, _G)


def send_error(error: ModemError, *, parts_sent: int = 0, context: str = "") -> SendError:
    """The `SendError` the Modem interface raises for a submit that failed with `error`."""
    message = f"{context}: {error}" if context else str(error)
    return SendError(
        message,
        outcome=error.outcome,
        status=error.status,
        cms=error.code if error.family == "CMS" else None,
        cme=error.code if error.family == "CME" else None,
        parts_sent=parts_sent,
    )


def registration_failure_status(stat: int) -> int | None:
    """Compat status for a `+CREG` stat that prevents sending (0, 2, 3, 4), else None."""
    return STATUS_NO_SERVICE if stat in (0, 2, 3, 4) else None


# --- status reports (TP-ST) -----------------------------------------------------------------


class ReportState(enum.Enum):
    DELIVERED = "delivered"  # final success
    PENDING = "pending"  # the SC is still trying; the message stays "sent"
    FAILED = "failed"  # final failure


_ST_MEANINGS: dict[int, str] = {
    0x00: "received by the SME",
    0x01: "forwarded to the SME, delivery unconfirmed",
    0x02: "replaced by the SC",
    0x20: "congestion",
    0x21: "SME busy",
    0x22: "no response from SME",
    0x23: "service rejected",
    0x24: "quality of service not available",
    0x25: "error in SME",
    0x40: "remote procedure error",
    0x41: "incompatible destination",
    0x42: "connection rejected by SME",
    0x43: "not obtainable",
    0x44: "quality of service not available",
    0x45: "no interworking available",
    0x46: "SM validity period expired",
    0x47: "SM deleted by originating SME",
    0x48: "SM deleted by SC administration",
    0x49: "SM does not exist",
    0x60: "congestion, SC stopped trying",
    0x61: "SME busy, SC stopped trying",
    0x62: "no response from SME, SC stopped trying",
    0x63: "service rejected, SC stopped trying",
    0x64: "quality of service not available, SC stopped trying",
    0x65: "error in SME, SC stopped trying",
}


def report_state(status: int) -> ReportState:
    """Classify a TP-ST value (TS 23.040 9.2.3.15; docs/compat-api.md status codes)."""
    if not 0 <= status <= 0xFF:
        raise ValueError(f"TP-ST must be one octet, got {status}")
    if status <= 0x1F:
        return ReportState.DELIVERED  # 0x03-0x0F reserved, 0x10-0x1F SC-specific: still success
    if status <= 0x3F:
        return ReportState.PENDING  # temporary error, SC still trying (incl. SC-specific 0x30-)
    # 0x40-0x5F permanent, 0x60-0x7F temporary but abandoned. 0x80-0xFF are reserved: treated as
    # final failures so that a message never waits forever on a value nobody defined.
    return ReportState.FAILED


def report_meaning(status: int) -> str:
    known = _ST_MEANINGS.get(status)
    if known is not None:
        return known
    return f"{report_state(status).value}, unlisted TP-ST 0x{status:02X}"


def report_compat_status(status: int) -> int | None:
    """Compat status for one part's report: 7 delivered, 8 not delivered, None while pending."""
    state = report_state(status)
    if state is ReportState.DELIVERED:
        return STATUS_DELIVERED
    if state is ReportState.FAILED:
        return STATUS_NOT_DELIVERED
    return None


def render_markdown() -> str:
    """The tables above as Markdown, for docs (the data is declared once, here)."""
    lines = ["| Error | Meaning | Handling | Compat status |", "|---|---|---|---|"]
    for table in (CMS_ERRORS, CME_ERRORS):
        for err in table.values():
            lines.append(
                f"| +{err.family} {err.code} | {err.meaning} | {err.kind.value} | {err.status} |"
            )
    return "\n".join(lines) + "\n"
