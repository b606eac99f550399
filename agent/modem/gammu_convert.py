"""Pure translations between python-gammu's dictionaries and exceptions and simhive's types.

No StateMachine here: everything takes plain data, so it is tested without a device.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .base import DeliveryReport, SendError, SendOutcome, SimInfo
from .countries import country_for_operator
from .digits import is_digits
from .errors import (
    STATUS_GENERIC_FAILURE,
    STATUS_NOT_ALLOWED,
    STATUS_NULL_PDU,
    cme_error,
    cms_error,
    send_error,
)
from .pdu import Coding, Concat, Deliver

# Gammu's own error names (python-gammu exception class names) grouped by what they mean for a
# submit. Numbers are Gammu's GSM_Error codes and change between versions, so names are used.
# A link error before the message left: nothing reached the modem, safe to send again later.
_NOTHING_SENT = frozenset(
    {
        "ERR_DEVICEOPENERROR",
        "ERR_DEVICELOCKED",
        "ERR_DEVICENOTEXIST",
        "ERR_DEVICEBUSY",
        "ERR_DEVICENOPERMISSION",
        "ERR_DEVICENODRIVER",
        "ERR_DEVICEWRITEERROR",
        "ERR_NOTCONNECTED",
    }
)
# Every error that means the link to the modem is gone; those beyond _NOTHING_SENT can strike
# mid-transfer, when the modem may already have sent the message.
LINK_ERRORS = _NOTHING_SENT | frozenset(
    {
        "ERR_DEVICENOTWORK",
        "ERR_DEVICEDTRRTSERROR",
        "ERR_DEVICECHANGESPEEDERROR",
        "ERR_DEVICEREADERROR",
        "ERR_DEVICEPARITYERROR",
        "ERR_TIMEOUT",
        "ERR_ABORTED",
    }
)
_RETRY = frozenset(
    {
        "ERR_NETWORK_ERROR",
        "ERR_NOSERVICE",
        "ERR_PHONEOFF",
        "ERR_BUSY",
        "ERR_UNKNOWN",
        "ERR_PHONE_INTERNAL",
        "ERR_UNKNOWNRESPONSE",
        # SendSMS reads the SMSC from the SIM first; this also hides a link that just died.
        "ERR_GETTING_SMSC",
    }
)
_BAD_MESSAGE = frozenset({"ERR_BUG", "ERR_NOTSUPPORTED", "ERR_NOTIMPLEMENTED", "ERR_MOREMEMORY"})
_SIM_PROBLEM = frozenset({"ERR_SECURITYERROR", "ERR_NOSIM", "ERR_EMPTYSMSC"})

_CODE_RE = re.compile(rb"(CMS|CME) Error ([0-9]{1,6})")


def error_name(exc: BaseException) -> str:
    return type(exc).__name__


def error_text(exc: BaseException) -> str:
    """'ERR_TIMEOUT in SendSMS: No response ...' from a gammu.GSMError's dict argument."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], Mapping) else {}
    text = str(info.get("Text", "")) or str(exc)
    where = str(info.get("Where", ""))
    return f"{error_name(exc)}{' in ' + where if where else ''}: {text}"


def is_link_error(exc: BaseException) -> bool:
    """The device is gone or does not answer: reconnect (Terminate + Init)."""
    return error_name(exc) in LINK_ERRORS


def last_modem_code(log_tail: bytes) -> tuple[str, int] | None:
    """The last `CMS Error <n>` / `CME Error <n>` Gammu logged, e.g. ("CMS", 41)."""
    found = _CODE_RE.findall(log_tail)
    if not found:
        return None
    family, code = found[-1]
    return family.decode(), int(code)


def send_error_from_gammu(
    exc: BaseException, *, parts_sent: int, modem_code: tuple[str, int] | None
) -> SendError:
    """The SendError for a failed SendSMS.

    With the modem's own +CMS/+CME code (from Gammu's log) the shared table in errors.py decides,
    exactly as for the AT backend. Without it, Gammu's error class is all there is: a timeout
    may have reached the network (UNKNOWN), a device that cannot be written to sent nothing
    (RETRY), a message Gammu calls a bug or unsupported fails the same way again (PERMANENT),
    and anything else is retried a bounded number of times rather than failed wrongly.
    """
    name = error_name(exc)
    context = f"part {parts_sent + 1}: {error_text(exc)}"
    if modem_code is not None:
        family, code = modem_code
        entry = cms_error(code) if family == "CMS" else cme_error(code)
        return send_error(entry, parts_sent=parts_sent, context=context)
    if name in _NOTHING_SENT:
        outcome, status = SendOutcome.RETRY, STATUS_GENERIC_FAILURE
    elif name in LINK_ERRORS:
        outcome, status = SendOutcome.UNKNOWN, STATUS_GENERIC_FAILURE
    elif name in _BAD_MESSAGE:
        outcome, status = SendOutcome.PERMANENT, STATUS_NULL_PDU
    elif name in _SIM_PROBLEM:
        outcome, status = SendOutcome.PERMANENT, STATUS_NOT_ALLOWED
    else:
        outcome, status = SendOutcome.RETRY, STATUS_GENERIC_FAILURE
        if name not in _RETRY:
            context += " (unclassified Gammu error, retried)"
    return SendError(context, outcome=outcome, status=status, parts_sent=parts_sent)


# --- network and SIM -------------------------------------------------------------------------


def operator_code(network_code: str | None) -> str | None:
    """Gammu's "262 01" -> "26201" (the +COPS numeric form); None when not a code."""
    if not network_code:
        return None
    code = network_code.replace(" ", "").strip()
    return code if is_digits(code) and len(code) in (5, 6) else None


def signal_dbm(quality: Mapping[str, Any] | None) -> int | None:
    """SignalStrength in dBm; Gammu says -1 for unknown, and no received signal is above -20."""
    if not quality:
        return None
    value = quality.get("SignalStrength")
    if not isinstance(value, int) or value > -20:
        return None
    return value


def sim_info(
    *,
    slot: int,
    imsi: str | None,
    network: Mapping[str, Any] | None,
    quality: Mapping[str, Any] | None,
    number: str | None,
) -> SimInfo:
    """What Gammu can tell; ICCID is always None (Gammu has no call for it)."""
    net = network or {}
    state = str(net.get("State", ""))
    code = operator_code(str(net.get("NetworkCode", "")) or None)
    name = str(net.get("NetworkName", "")).strip() or None
    return SimInfo(
        slot=slot,
        present=True,
        active=True,
        iccid=None,
        imsi=imsi or None,
        number=number or None,
        operator=name,
        operator_code=code,
        carrier=name,
        country_iso=country_for_operator(code) if code else None,
        registered=state in ("HomeNetwork", "RoamingNetwork"),
        roaming=state == "RoamingNetwork",
        signal_dbm=signal_dbm(quality),
    )


# --- messages --------------------------------------------------------------------------------


def is_status_report(sms: Mapping[str, Any]) -> bool:
    return sms.get("Type") == "Status_Report"


def is_incoming(sms: Mapping[str, Any]) -> bool:
    """A received SMS-DELIVER (stored outgoing messages are not ours to read or delete)."""
    return sms.get("Type") == "Deliver"


def _aware(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def delivery_report(slot: int, sms: Mapping[str, Any]) -> DeliveryReport:
    """A Status_Report dict. Gammu puts TP-SCTS in SMSCDateTime and TP-DT in DateTime."""
    status = sms.get("DeliveryStatus")
    reference = sms.get("MessageReference")
    if not isinstance(status, int) or not isinstance(reference, int):
        raise ValueError(f"status report without reference or status: {dict(sms)!r}")
    return DeliveryReport(
        slot=slot,
        reference=reference,
        recipient=str(sms.get("Number", "")),
        status=status,
        sc_timestamp=_aware(sms.get("SMSCDateTime")),
        discharge_time=_aware(sms.get("DateTime")),
    )


_CODINGS = {
    "Unicode_No_Compression": (Coding.UCS2, 0x08),
    "Unicode_Compression": (Coding.UCS2, 0x08),
    "8bit": (Coding.BIT8, 0x04),
}


def coding_name(gammu_coding: str) -> str:
    """Gammu's Coding -> SendResult.encoding ("gsm7", "ucs2", "8bit")."""
    return _CODINGS.get(gammu_coding, (Coding.GSM7, 0))[0].value


def deliver(sms: Mapping[str, Any]) -> Deliver:
    """A received SMS dict as the PDU codec's Deliver, so reassembly.py can take it.

    The SC timestamp is Gammu's DateTime of a Deliver (TP-SCTS). The same fields make the
    same idempotency key as the AT backend computes for the same stored message.
    """
    udh = sms.get("UDH") or {}
    concat = None
    total, seq = udh.get("AllParts", 0), udh.get("PartNumber", -1)
    if isinstance(total, int) and isinstance(seq, int) and total > 1 and 1 <= seq <= total:
        ref = udh.get("ID16bit", -1)
        if not isinstance(ref, int) or ref < 0:
            ref = udh.get("ID8bit", -1)
        if isinstance(ref, int) and ref >= 0:
            concat = Concat(reference=ref, total=total, seq=seq)
    coding, dcs = _CODINGS.get(str(sms.get("Coding", "")), (Coding.GSM7, 0x00))
    sent = _aware(sms.get("DateTime")) or datetime.now(UTC)
    raw_udh = udh.get("Text", b"")
    text = sms.get("Text", "")
    if isinstance(text, bytes):  # 8-bit data: Gammu hands the octets over
        text = text.decode("latin-1")
    elif coding is Coding.GSM7:
        # Gammu 1.45 hands over as many characters as the part has septets, but an extension
        # character (ESC + code, e.g. "€") is two septets and one character: the text ends at
        # a U+0000 and leftover buffer follows ("{{" -> "{{\x00\uae32"; found by the property
        # test in tests/gammu/test_convert.py, seen on the emulator too). GSM 7-bit has no
        # character that decodes to U+0000 (0x00 is "@"), so the first one ends the text.
        text = str(text).split("\x00", 1)[0]
    smsc = (sms.get("SMSC") or {}).get("Number") or None
    return Deliver(
        smsc=smsc,
        sender=str(sms.get("Number", "")),
        pid=0,
        dcs=dcs,
        coding=coding,
        sc_timestamp=sent,
        concat=concat,
        text=str(text),
        user_data_header=raw_udh if isinstance(raw_udh, bytes) else b"",
        status_report_indication=False,
    )
