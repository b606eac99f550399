"""Decoding PDUs: what the SC sends us (SMS-DELIVER, SMS-STATUS-REPORT) and SMS-SUBMIT.

Every malformed input raises `PduError`, never an IndexError or the like.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from simhive.agent.modem import gsm7
from simhive.agent.modem.pdu_fields import (
    Reader,
    coding_from_dcs,
    decode_address,
    decode_sca,
    decode_timestamp,
    vp_minutes,
)
from simhive.agent.modem.pdu_types import Deliver, PduError, StatusReport, Submit
from simhive.agent.modem.pdu_userdata import decode_user_data

_T = TypeVar("_T")


def from_hex(text: str) -> bytes:
    """The octets of a hex PDU line as a modem prints it; PduError if it is not hex."""
    try:
        return bytes.fromhex(text.strip())
    except (ValueError, AttributeError, TypeError):
        raise PduError(f"PDU is not hexadecimal: {str(text)[:80]!r}") from None


def _guarded(what: str, pdu: bytes, parse: Callable[[Reader], _T]) -> _T:
    if not isinstance(pdu, bytes | bytearray | memoryview):
        raise PduError(f"{what} must be bytes, got {type(pdu).__name__}")
    try:
        return parse(Reader(bytes(pdu)))
    except PduError:
        raise
    except (gsm7.Gsm7Error, IndexError, ValueError, OverflowError, KeyError) as e:
        # Defence in depth: every path above is bounds-checked, but a modem line is untrusted.
        raise PduError(f"malformed {what}: {e}") from None


def decode_submit(pdu: bytes, *, with_smsc: bool = True) -> Submit:
    """Decode an SMS-SUBMIT (the MS -> SC direction); the SCA, if present, is skipped."""

    def parse(r: Reader) -> Submit:
        if with_smsc:
            decode_sca(r)
        first = r.octet("first octet")
        if first & 0x03 != 0x01:
            raise PduError(f"not an SMS-SUBMIT (first octet {first:02X})")
        mr = r.octet("message reference")
        destination = decode_address(r, "destination")
        pid = r.octet("protocol identifier")
        dcs = r.octet("data coding scheme")
        vpf = (first >> 3) & 0x03
        validity: int | None = None
        if vpf == 0b10:
            validity = vp_minutes(r.octet("validity period"))
        elif vpf:
            r.take(7, "validity period")  # absolute or enhanced: no duration without a clock
        coding = coding_from_dcs(dcs)
        text, udh, concat = decode_user_data(r, coding, bool(first & 0x40))
        return Submit(
            destination=destination,
            status_report=bool(first & 0x20),
            reject_duplicates=bool(first & 0x04),
            message_reference=mr,
            pid=pid,
            dcs=dcs,
            coding=coding,
            validity_minutes=validity,
            concat=concat,
            text=text,
            user_data_header=udh,
        )

    return _guarded("SMS-SUBMIT PDU", pdu, parse)


def decode_incoming(pdu: bytes, *, with_smsc: bool = True) -> Deliver | StatusReport:
    """Decode what the SC sends to us: an SMS-DELIVER or an SMS-STATUS-REPORT.

    Stored outgoing messages (`+CMGL` stat 2/3) are SUBMITs: use `decode_submit` for those.
    """

    def parse(r: Reader) -> Deliver | StatusReport:
        smsc = decode_sca(r) if with_smsc else None
        first = r.octet("first octet")
        mti = first & 0x03
        if mti == 0x00:
            sender = decode_address(r, "originating address")
            pid = r.octet("protocol identifier")
            dcs = r.octet("data coding scheme")
            scts = decode_timestamp(r, "SC timestamp")
            coding = coding_from_dcs(dcs)
            text, udh, concat = decode_user_data(r, coding, bool(first & 0x40))
            return Deliver(
                smsc=smsc,
                sender=sender,
                pid=pid,
                dcs=dcs,
                coding=coding,
                sc_timestamp=scts,
                concat=concat,
                text=text,
                user_data_header=udh,
                status_report_indication=bool(first & 0x20),
            )
        if mti == 0x02:
            mr = r.octet("message reference")
            recipient = decode_address(r, "recipient address")
            scts = decode_timestamp(r, "SC timestamp")
            discharge = decode_timestamp(r, "discharge time")
            status = r.octet("status")
            # Optional TP-PI/PID/DCS/UD may follow; a delivery report needs none of them.
            return StatusReport(
                smsc=smsc,
                message_reference=mr,
                recipient=recipient,
                sc_timestamp=scts,
                discharge_time=discharge,
                status=status,
            )
        kind = "SMS-SUBMIT-REPORT" if mti == 0x01 else "reserved message type"
        raise PduError(f"{kind} (first octet {first:02X}) is not a DELIVER or STATUS-REPORT")

    return _guarded("incoming PDU", pdu, parse)
