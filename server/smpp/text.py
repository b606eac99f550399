"""Message text inside SMPP PDUs, without I/O: data_coding, user data headers, sar_* TLVs.

Incoming (`submit_sm`): data_coding 0 is the GSM 7-bit default alphabet, which clients send one
septet per octet ("unpacked") or packed 8 septets into 7 octets; a text part with an octet >= 0x80
cannot be unpacked septets, so it is read as packed. 1 is IA5 (ASCII), 3 Latin-1, 8 UCS-2
(UTF-16BE, so surrogate pairs survive). A concatenated part names itself either in a user data
header (esm_class UDHI bit, IEI 0x00 or 0x08) or in the sar_* TLVs.

Outgoing (`deliver_sm`): receipts are ASCII with data_coding 0 like every SMSC sends them; an
incoming SMS goes out as unpacked GSM-7 (data_coding 0) when its alphabet allows, else UCS-2
(8), and in message_payload when it is longer than short_message's 254 octets.
"""

from __future__ import annotations

from dataclasses import dataclass

from simhive.agent.modem import gsm7
from simhive.server.smpp.pdu import PduError, Status, Tag, u8_tlv

ESM_UDHI = 0x40
DC_DEFAULT = 0
DC_IA5 = 1
DC_LATIN1 = 3
DC_UCS2 = 8
SHORT_MESSAGE_MAX = 254


@dataclass(frozen=True, slots=True)
class Concat:
    """Which part of which concatenated message: reference, total parts, this part (1-based)."""

    ref: int
    total: int
    seq: int


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    concat: Concat | None = None


def split_udh(data: bytes) -> tuple[bytes, bytes]:
    """(the user data header including its length octet, the rest)."""
    if not data:
        raise PduError(Status.RINVESMCLASS, "UDHI set but no user data header")
    size = data[0] + 1
    if size > len(data):
        raise PduError(Status.RINVESMCLASS, "user data header longer than the message")
    return data[:size], data[size:]


def udh_concat(udh: bytes) -> Concat | None:
    """The concatenation element of a user data header, if it has one."""
    pos = 1
    found: Concat | None = None
    while pos + 2 <= len(udh):
        iei, size = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + size]
        if len(value) != size:
            raise PduError(Status.RINVESMCLASS, "truncated user data header element")
        if iei == 0x00 and size == 3:
            found = Concat(value[0], value[1], value[2])
        elif iei == 0x08 and size == 4:
            found = Concat(int.from_bytes(value[:2], "big"), value[2], value[3])
        pos += 2 + size
    if pos != len(udh):
        raise PduError(Status.RINVESMCLASS, "malformed user data header")
    return found


def decode_text(data: bytes, data_coding: int, udh_octets: int = 0) -> str:
    """Octets in `data_coding` -> text; `udh_octets` precede them (for packed GSM fill bits)."""
    if data_coding == DC_DEFAULT:
        return _decode_gsm(data, udh_octets)
    if data_coding == DC_IA5:
        if not data.isascii():
            raise PduError(Status.RSUBMITFAIL, "data_coding 1 (IA5) holds octets >= 0x80")
        return data.decode("ascii")
    if data_coding == DC_LATIN1:
        return data.decode("latin-1")
    if data_coding == DC_UCS2:
        if len(data) % 2:
            raise PduError(Status.RSUBMITFAIL, "UCS-2 text with an odd number of octets")
        return data.decode("utf-16-be", errors="replace")
    raise PduError(Status.RSUBMITFAIL, f"unsupported data_coding {data_coding}")


def _decode_gsm(data: bytes, udh_octets: int) -> str:
    if data.isascii():  # every octet < 0x80: unpacked septets
        return gsm7.decode(list(data))
    fill = (7 - (udh_octets * 8) % 7) % 7 if udh_octets else 0
    bits = len(data) * 8 - fill
    count = bits // 7
    septets = gsm7.unpack(data, count, fill)
    # When the septets leave 7 spare bits in the last octet (7 septets in 7 octets), those zero
    # bits read back as an extra '@': a trailing '@' whose absence needs as many octets goes.
    if septets and septets[-1] == 0 and gsm7.packed_length(count - 1, fill) == len(data):
        septets.pop()
    return gsm7.decode(septets)


def message_text(
    short_message: bytes,
    payload: bytes | None,
    esm_class: int,
    data_coding: int,
    sar: tuple[int | None, int | None, int | None] = (None, None, None),
) -> Text:
    """The text and part info of a submit_sm (short_message or message_payload, not both)."""
    if payload is not None and short_message:
        raise PduError(Status.RSUBMITFAIL, "short_message and message_payload both set")
    data = payload if payload is not None else short_message
    concat = None
    udh_octets = 0
    if esm_class & ESM_UDHI:
        udh, data = split_udh(data)
        udh_octets = len(udh)
        concat = udh_concat(udh)
    ref, total, seq = sar
    if concat is None and ref is not None:
        if total is None or seq is None:
            raise PduError(Status.RSUBMITFAIL, "sar_msg_ref_num without the other sar_* TLVs")
        concat = Concat(ref, total, seq)
    if concat is not None and not (1 <= concat.seq <= concat.total):
        raise PduError(Status.RSUBMITFAIL, f"part {concat.seq} of {concat.total}")
    text = decode_text(data, data_coding, udh_octets)
    if concat is not None and concat.total == 1:
        concat = None
    return Text(text, concat)


def encode_text(text: str) -> tuple[int, bytes]:
    """(data_coding, octets) for text sent to an ESME: unpacked GSM-7 if it fits, else UCS-2."""
    if gsm7.is_gsm7(text):
        return DC_DEFAULT, bytes(gsm7.encode(text))
    return DC_UCS2, text.encode("utf-16-be")


def body_fields(text: str) -> tuple[dict[str, int | bytes], list[tuple[int, bytes]]]:
    """deliver_sm fields for a text: short_message, or message_payload when too long."""
    coding, data = encode_text(text)
    if len(data) <= SHORT_MESSAGE_MAX:
        return {"data_coding": coding, "short_message": data}, []
    return {"data_coding": coding, "short_message": b""}, [(Tag.MESSAGE_PAYLOAD, data)]


def sar_tlvs(concat: Concat) -> list[tuple[int, bytes]]:
    """sar_* TLVs for a part (the client side of a test or benchmark uses them)."""
    return [
        (Tag.SAR_MSG_REF_NUM, concat.ref.to_bytes(2, "big")),
        u8_tlv(Tag.SAR_TOTAL_SEGMENTS, concat.total),
        u8_tlv(Tag.SAR_SEGMENT_SEQNUM, concat.seq),
    ]
