"""Building PDUs: SMS-SUBMIT for `AT+CMGS`, and the SMS-DELIVER and SMS-STATUS-REPORT a modem
emulator's virtual SMSC hands to its modem."""

from __future__ import annotations

from datetime import datetime

from simhive.agent.modem.pdu_fields import (
    encode_any_address,
    encode_number_address,
    encode_sca,
    encode_timestamp,
    vp_relative,
)
from simhive.agent.modem.pdu_types import Coding, Concat, PduError, SubmitPdu
from simhive.agent.modem.pdu_userdata import (
    DCS,
    LIMITS,
    choose_coding,
    concat_udh,
    cost,
    encode_user_data,
    split_text,
)


def encode_submit(
    number: str,
    text: str,
    *,
    status_report: bool = True,
    validity_minutes: int | None = 1440,
    concat_reference: int = 0,
    ref16: bool = False,
    coding: Coding | None = None,
) -> list[SubmitPdu]:
    """SMS-SUBMIT PDUs for `AT+CMGS`, one per part, each with an empty SCA (use AT+CSCA)."""
    chosen, parts = split_text(text, coding, ref16=ref16)
    da = encode_number_address(number, "destination")
    vp = b"" if validity_minutes is None else bytes([vp_relative(validity_minutes)])
    first = 0x01 | (0x20 if status_report else 0) | (0x10 if vp else 0)
    out: list[SubmitPdu] = []
    for seq, part in enumerate(parts, start=1):
        udh = b""
        if len(parts) > 1:
            udh = concat_udh(Concat(concat_reference, len(parts), seq), ref16)
        udl, ud = encode_user_data(part, chosen, udh)
        tpdu = (
            bytes([first | (0x40 if udh else 0), 0x00])
            + da
            + bytes([0x00, DCS[chosen]])
            + vp
            + bytes([udl])
            + ud
        )
        out.append(SubmitPdu(pdu=b"\x00" + tpdu, tpdu_length=len(tpdu), coding=chosen))
    return out


def encode_deliver(
    sender: str,
    text: str,
    *,
    sc_timestamp: datetime,
    smsc: str | None = None,
    coding: Coding | None = None,
    concat: Concat | None = None,
    ref16: bool = False,
) -> bytes:
    """One SMS-DELIVER PDU with its SCA field; `text` must fit one (part of a) message."""
    chosen = choose_coding(text, coding)
    single, per8, per16 = LIMITS[chosen]
    limit = single if concat is None else (per16 if ref16 else per8)
    used = sum(cost(ch, chosen) for ch in text)
    if used > limit:
        raise PduError(f"text needs {used} units, one {chosen.value} part holds {limit}")
    udh = b"" if concat is None else concat_udh(concat, ref16)
    udl, ud = encode_user_data(text, chosen, udh)
    first = 0x04 | (0x40 if udh else 0)  # 0x04: TP-MMS "no more messages waiting"
    return (
        encode_sca(smsc)
        + bytes([first])
        + encode_any_address(sender, "sender")
        + bytes([0x00, DCS[chosen]])
        + encode_timestamp(sc_timestamp, "SC timestamp")
        + bytes([udl])
        + ud
    )


def encode_status_report(
    message_reference: int,
    recipient: str,
    status: int,
    *,
    sc_timestamp: datetime,
    discharge_time: datetime,
    smsc: str | None = None,
) -> bytes:
    """One SMS-STATUS-REPORT PDU with its SCA field (as a modem shows it in `+CDS`)."""
    for name, value in (("message reference", message_reference), ("status", status)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            raise PduError(f"{name} must be 0-255, got {value!r}")
    return (
        encode_sca(smsc)
        + bytes([0x06, message_reference])  # MTI 10 = status report, 0x04 TP-MMS
        + encode_any_address(recipient, "recipient")
        + encode_timestamp(sc_timestamp, "SC timestamp")
        + encode_timestamp(discharge_time, "discharge time")
        + bytes([status])
    )
