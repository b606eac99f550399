"""SMS TPDU codec (3GPP TS 23.040 / 23.038), sans-IO, standard library only.

Builds SMS-SUBMIT PDUs for `AT+CMGS` in PDU mode and decodes what a modem hands back:
SMS-DELIVER (`+CMGR`, `+CMGL`, `+CMT`) and SMS-STATUS-REPORT (`+CDS`, `"SR"` storage). It can also
build DELIVER and STATUS-REPORT PDUs and decode SUBMIT PDUs, which is what a modem emulator's
virtual SMSC needs. Every malformed input raises `PduError`, never an IndexError or the like:
a modem line is untrusted input.

Text conventions:
- UCS2 is UTF-16BE on the air, as phones send it: characters beyond the BMP (emoji) are
  surrogate pairs and cost two of the 70/67/66 units.
- 8-bit data is carried as text with one character per octet (latin-1), so
  `text.encode("latin-1")` gives the raw octets back.
- A UCS2 part of a concatenated message keeps a lone surrogate at its edge (another sender split a
  pair across parts); `reassembly` joins the parts and repairs them. Unsplit messages never
  contain lone surrogates.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

from agent.modem import gsm7

_T = TypeVar("_T")


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


# Octets/septets/UTF-16 units per SMS: (single, per part with 8-bit ref, per part with 16-bit ref).
# A concatenation UDH costs 6 or 7 octets; in 7-bit coding that is 7 or 8 septets incl. fill bits.
_LIMITS: dict[Coding, tuple[int, int, int]] = {
    Coding.GSM7: (160, 153, 152),
    Coding.UCS2: (70, 67, 66),
    Coding.BIT8: (140, 134, 133),
}
_DCS: dict[Coding, int] = {Coding.GSM7: 0x00, Coding.UCS2: 0x08, Coding.BIT8: 0x04}
MAX_PARTS = 255  # the concatenation header's total is one octet

_NUMBER_RE = re.compile(r"\+?[0-9]{1,20}")
_TYPE_INTERNATIONAL = 0x91
_TYPE_UNKNOWN = 0x81
_TYPE_ALPHANUMERIC = 0xD0
_BCD_DIGITS = "0123456789*#abc"  # nibble F is the filler of an odd-length number

_IEI_CONCAT8 = 0x00
_IEI_CONCAT16 = 0x08
_IEI_SINGLE_SHIFT = 0x24
_IEI_LOCKING_SHIFT = 0x25


# --- splitting and billing ------------------------------------------------------------------


def _choose_coding(text: str, coding: Coding | None) -> Coding:
    if coding is None:
        return Coding.GSM7 if gsm7.is_gsm7(text) else Coding.UCS2
    if coding is Coding.GSM7 and not gsm7.is_gsm7(text):
        bad = next(ch for ch in text if not gsm7.is_gsm7(ch))
        raise PduError(f"character {bad!r} is not in the GSM 7-bit alphabet")
    if coding is Coding.BIT8 and any(ord(ch) > 0xFF for ch in text):
        raise PduError("8-bit data must be text with one character per octet (latin-1)")
    if coding is Coding.UCS2 and any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise PduError("text contains a lone UTF-16 surrogate")
    return coding


def _cost(ch: str, coding: Coding) -> int:
    if coding is Coding.GSM7:
        return gsm7.char_septets(ch)
    if coding is Coding.UCS2:
        return 2 if ord(ch) > 0xFFFF else 1
    return 1


def _split(text: str, coding: Coding, ref16: bool) -> list[str]:
    """Greedy split on character boundaries, so an ESC pair or a surrogate pair stays whole."""
    single, per8, per16 = _LIMITS[coding]
    costs = [_cost(ch, coding) for ch in text]
    if sum(costs) <= single:
        return [text]
    per_part = per16 if ref16 else per8
    parts: list[str] = []
    start = used = 0
    for i, c in enumerate(costs):
        if used + c > per_part:
            parts.append(text[start:i])
            start, used = i, 0
        used += c
    parts.append(text[start:])
    if len(parts) > MAX_PARTS:
        raise PduError(f"text needs {len(parts)} parts; at most {MAX_PARTS} can be concatenated")
    return parts


def split_text(
    text: str, coding: Coding | None = None, *, ref16: bool = False
) -> tuple[Coding, list[str]]:
    """The coding and the parts a text is sent (and billed) as: 160/153, 70/67, 140/134 units
    (152, 66, 133 per part with 16-bit concatenation references)."""
    if not isinstance(text, str):
        raise PduError("text must be a string")
    chosen = _choose_coding(text, coding)
    return chosen, _split(text, chosen, ref16)


# --- fields -------------------------------------------------------------------------------


class _Reader:
    """A bounds-checked cursor: running past the end is a PduError, not an IndexError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def octet(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise PduError(f"PDU truncated: {what} missing at octet {self.pos}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise PduError(
                f"PDU truncated: {what} needs {n} octets at octet {self.pos}, "
                f"{len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def _bcd_swap(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex("".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2)))


def _bcd_unswap(data: bytes, ndigits: int) -> str:
    out: list[str] = []
    for octet in data:
        for nibble in (octet & 0x0F, octet >> 4):
            if len(out) < ndigits and nibble != 0x0F:
                out.append(_BCD_DIGITS[nibble])
    return "".join(out)


def _number_parts(number: str, what: str) -> tuple[int, str]:
    if not isinstance(number, str) or not _NUMBER_RE.fullmatch(number):
        raise PduError(f"{what} {number!r} must be digits, optionally with a leading '+' (1-20)")
    if number.startswith("+"):
        return _TYPE_INTERNATIONAL, number[1:]
    return _TYPE_UNKNOWN, number


def _encode_number_address(number: str, what: str) -> bytes:
    toa, digits = _number_parts(number, what)
    return bytes([len(digits), toa]) + _bcd_swap(digits)


def _encode_any_address(address: str, what: str) -> bytes:
    """A numeric address, or else an alphanumeric one (TON 5, packed GSM 7-bit, <= 11 septets)."""
    if isinstance(address, str) and _NUMBER_RE.fullmatch(address):
        return _encode_number_address(address, what)
    if not isinstance(address, str) or not address:
        raise PduError(f"{what} must be a non-empty string")
    try:
        septets = gsm7.encode(address)
    except gsm7.Gsm7Error as e:
        raise PduError(f"alphanumeric {what} {address!r}: {e}") from None
    if len(septets) > 11:
        raise PduError(f"alphanumeric {what} {address!r} is longer than 11 septets")
    packed = gsm7.pack(septets)
    semi_octets = (7 * len(septets) + 3) // 4  # useful semi-octets, not the padded count
    return bytes([semi_octets, _TYPE_ALPHANUMERIC]) + packed


def _decode_address(r: _Reader, what: str) -> str:
    length = r.octet(f"{what} length")
    toa = r.octet(f"{what} type")
    data = r.take((length + 1) // 2, what)
    ton = (toa >> 4) & 0x07
    if ton == 5:
        return gsm7.decode(gsm7.unpack(data, length * 4 // 7))
    digits = _bcd_unswap(data, length)
    return "+" + digits if ton == 1 and digits else digits


def _encode_sca(smsc: str | None) -> bytes:
    if smsc is None:
        return b"\x00"
    toa, digits = _number_parts(smsc, "SMSC")
    body = bytes([toa]) + _bcd_swap(digits)
    return bytes([len(body)]) + body


def _decode_sca(r: _Reader) -> str | None:
    length = r.octet("SMSC length")
    if length == 0:
        return None
    data = r.take(length, "SMSC address")
    if length == 1:
        return None  # a type octet without digits
    digits = _bcd_unswap(data[1:], 2 * (length - 1))
    if not digits:
        return None
    return "+" + digits if (data[0] >> 4) & 0x07 == 1 else digits


def _encode_timestamp(ts: datetime, what: str) -> bytes:
    if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
        raise PduError(f"{what} must be a timezone-aware datetime")
    offset = ts.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    if minutes % 15 or offset.total_seconds() % 60 or abs(minutes) // 15 > 79:
        # The air format carries quarter hours only; fall back to UTC rather than lie.
        ts = ts.astimezone(UTC)
        minutes = 0
    if not 2000 <= ts.year <= 2099:
        raise PduError(f"{what} year {ts.year} cannot be encoded (2000-2099)")
    quarters = abs(minutes) // 15
    digits = f"{ts.year % 100:02d}{ts.month:02d}{ts.day:02d}{ts.hour:02d}{ts.minute:02d}"
    digits += f"{ts.second:02d}"
    tz_octet = (quarters % 10) << 4 | (quarters // 10) | (0x08 if minutes < 0 else 0)
    return _bcd_swap(digits) + bytes([tz_octet])


def _decode_timestamp(r: _Reader, what: str) -> datetime:
    data = r.take(7, what)
    fields: list[int] = []
    for octet in data[:6]:
        lo, hi = octet & 0x0F, octet >> 4
        if lo > 9 or hi > 9:
            raise PduError(f"{what} has a non-decimal digit: {data.hex().upper()}")
        fields.append(lo * 10 + hi)
    tz = data[6]
    tens, units = tz & 0x07, tz >> 4
    if units > 9:
        raise PduError(f"{what} has a non-decimal time zone: {data.hex().upper()}")
    quarters = tens * 10 + units
    sign = -1 if tz & 0x08 else 1
    year, month, day, hour, minute, second = fields
    try:
        return datetime(
            2000 + year,
            month,
            day,
            hour,
            minute,
            second,
            tzinfo=timezone(timedelta(minutes=sign * 15 * quarters)),
        )
    except ValueError as e:
        raise PduError(f"{what} is not a valid date ({e}): {data.hex().upper()}") from None


def _vp_relative(minutes: int) -> int:
    """TS 23.040 9.2.3.12.1, rounded up so the message lives at least as long as asked."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise PduError(f"validity must be a positive number of minutes, got {minutes!r}")
    if minutes <= 720:
        return max(0, -(-minutes // 5) - 1)
    if minutes <= 1440:
        return 143 + -(-(minutes - 720) // 30)
    days = -(-minutes // 1440)
    if days <= 30:
        return 166 + days
    return min(255, 192 + max(5, -(-minutes // 10080)))


def _vp_minutes(vp: int) -> int:
    if vp <= 143:
        return (vp + 1) * 5
    if vp <= 167:
        return 720 + (vp - 143) * 30
    if vp <= 196:
        return (vp - 166) * 1440
    return (vp - 192) * 10080


def _coding_from_dcs(dcs: int) -> Coding:
    """TS 23.038 section 4. Compressed and reserved alphabets are passed on as raw 8-bit."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding (0x40-0x7F: the same, marked for auto-deletion)
        if dcs & 0x20:
            return Coding.BIT8  # compressed: we cannot decompress, keep the octets
        alphabet = (dcs >> 2) & 0x03
        return {0: Coding.GSM7, 1: Coding.BIT8, 2: Coding.UCS2}.get(alphabet, Coding.GSM7)
    if group in (0xC, 0xD):  # message waiting indication, discard / store
        return Coding.GSM7
    if group == 0xE:  # message waiting indication, store, UCS2
        return Coding.UCS2
    if group == 0xF:
        return Coding.BIT8 if dcs & 0x04 else Coding.GSM7
    return Coding.GSM7  # reserved groups 0x8-0xB: 23.038 says treat as the default alphabet


# --- user data ----------------------------------------------------------------------------


def _concat_udh(concat: Concat, ref16: bool) -> bytes:
    ref_max = 0xFFFF if ref16 else 0xFF
    if not 0 <= concat.reference <= ref_max:
        raise PduError(f"concatenation reference {concat.reference} outside 0-{ref_max}")
    if not 1 <= concat.total <= MAX_PARTS or not 1 <= concat.seq <= concat.total:
        raise PduError(f"concatenation part {concat.seq} of {concat.total} is not valid")
    if ref16:
        return bytes(
            [6, _IEI_CONCAT16, 4, concat.reference >> 8, concat.reference & 0xFF]
            + [concat.total, concat.seq]
        )
    return bytes([5, _IEI_CONCAT8, 3, concat.reference, concat.total, concat.seq])


@dataclass(frozen=True)
class _Header:
    concat: Concat | None = None
    locking: int = 0  # national language locking shift table (IEI 0x25)
    single: int = 0  # national language single shift table (IEI 0x24)


def _parse_udh(udh: bytes) -> _Header:
    """The elements of a UDH (length octet included) we act on, validating every IE length."""
    concat: Concat | None = None
    locking = single = 0
    pos, end = 1, len(udh)
    while pos < end:
        if pos + 2 > end:
            raise PduError(f"user data header element truncated: {udh.hex().upper()}")
        iei, ielen = udh[pos], udh[pos + 1]
        data = udh[pos + 2 : pos + 2 + ielen]
        if len(data) != ielen:
            raise PduError(f"user data header element overruns the header: {udh.hex().upper()}")
        pos += 2 + ielen
        if iei == _IEI_SINGLE_SHIFT and ielen == 1:
            single = data[0]
        elif iei == _IEI_LOCKING_SHIFT and ielen == 1:
            locking = data[0]
        elif concat is not None:
            continue
        elif iei in (_IEI_CONCAT8, _IEI_CONCAT16) and ielen == (3 if iei == _IEI_CONCAT8 else 4):
            if iei == _IEI_CONCAT8:
                ref, total, seq = data[0], data[1], data[2]
            else:
                ref, total, seq = data[0] << 8 | data[1], data[2], data[3]
            # 23.040 9.2.3.24.1: an element with total 0 or seq outside 1..total is ignored.
            if total >= 1 and 1 <= seq <= total:
                concat = Concat(reference=ref, total=total, seq=seq)
    return _Header(concat, locking, single)


def _encode_user_data(text: str, coding: Coding, udh: bytes) -> tuple[int, bytes]:
    """(UDL, UD) for one part; UDL counts septets in 7-bit coding, else octets."""
    if coding is Coding.GSM7:
        septets = gsm7.encode(text)
        header_bits = 8 * len(udh)
        header_septets = -(-header_bits // 7)
        fill = 7 * header_septets - header_bits
        return header_septets + len(septets), udh + gsm7.pack(septets, fill)
    body = text.encode("utf-16-be") if coding is Coding.UCS2 else text.encode("latin-1")
    return len(udh) + len(body), udh + body


def _decode_user_data(
    r: _Reader, coding: Coding, has_udh: bool
) -> tuple[str, bytes, Concat | None]:
    udl = r.octet("user data length")
    ud = r.rest()
    # Octets the UDL covers; anything after them is padding some modems append, and ignored.
    size = gsm7.packed_length(udl) if coding is Coding.GSM7 else udl
    if len(ud) < size:
        unit = "septets" if coding is Coding.GSM7 else "octets"
        raise PduError(f"user data truncated: UDL {udl} {unit} needs {size} octets, got {len(ud)}")
    ud = ud[:size]
    udh = b""
    if has_udh:
        if not ud or ud[0] + 1 > len(ud):
            raise PduError(f"user data header longer than the user data (UDL {udl})")
        udh = ud[: ud[0] + 1]
    header = _parse_udh(udh) if udh else _Header()
    concat = header.concat
    if coding is Coding.GSM7:
        header_bits = 8 * len(udh)
        header_septets = -(-header_bits // 7)
        if header_septets > udl:
            raise PduError(f"user data header ({len(udh)} octets) longer than UDL {udl}")
        fill = 7 * header_septets - header_bits
        septets = gsm7.unpack(ud[len(udh) :], udl - header_septets, fill)
        text = gsm7.decode(septets, locking=header.locking, single=header.single)
    elif coding is Coding.UCS2:
        text = _decode_ucs2(ud[len(udh) :], keep_edges=concat is not None)
    else:
        text = ud[len(udh) :].decode("latin-1")
    return text, udh, concat


def _decode_ucs2(body: bytes, *, keep_edges: bool) -> str:
    odd = len(body) % 2
    text = body[: len(body) - odd].decode("utf-16-be", "surrogatepass")
    if keep_edges:
        # Only the first and last unit may be half of a pair split across parts by the sender.
        inner = text[1:-1] if len(text) > 2 else ""
        cleaned = inner.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        text = text[:1] + cleaned + text[-1:] if len(text) > 2 else text
    else:
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text + ("\ufffd" if odd else "")


# --- public encoders ------------------------------------------------------------------------


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
    if not isinstance(text, str):
        raise PduError("text must be a string")
    chosen = _choose_coding(text, coding)
    parts = _split(text, chosen, ref16)
    da = _encode_number_address(number, "destination")
    vp = b"" if validity_minutes is None else bytes([_vp_relative(validity_minutes)])
    first = 0x01 | (0x20 if status_report else 0) | (0x10 if vp else 0)
    out: list[SubmitPdu] = []
    for seq, part in enumerate(parts, start=1):
        udh = b""
        if len(parts) > 1:
            udh = _concat_udh(Concat(concat_reference, len(parts), seq), ref16)
        udl, ud = _encode_user_data(part, chosen, udh)
        tpdu = (
            bytes([first | (0x40 if udh else 0), 0x00])
            + da
            + bytes([0x00, _DCS[chosen]])
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
    if not isinstance(text, str):
        raise PduError("text must be a string")
    chosen = _choose_coding(text, coding)
    single, per8, per16 = _LIMITS[chosen]
    limit = single if concat is None else (per16 if ref16 else per8)
    used = sum(_cost(ch, chosen) for ch in text)
    if used > limit:
        raise PduError(f"text needs {used} units, one {chosen.value} part holds {limit}")
    udh = b"" if concat is None else _concat_udh(concat, ref16)
    udl, ud = _encode_user_data(text, chosen, udh)
    first = 0x04 | (0x40 if udh else 0)  # 0x04: TP-MMS "no more messages waiting"
    return (
        _encode_sca(smsc)
        + bytes([first])
        + _encode_any_address(sender, "sender")
        + bytes([0x00, _DCS[chosen]])
        + _encode_timestamp(sc_timestamp, "SC timestamp")
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
        _encode_sca(smsc)
        + bytes([0x06, message_reference])  # MTI 10 = status report, 0x04 TP-MMS
        + _encode_any_address(recipient, "recipient")
        + _encode_timestamp(sc_timestamp, "SC timestamp")
        + _encode_timestamp(discharge_time, "discharge time")
        + bytes([status])
    )


# --- public decoders ------------------------------------------------------------------------


def from_hex(text: str) -> bytes:
    """The octets of a hex PDU line as a modem prints it; PduError if it is not hex."""
    try:
        return bytes.fromhex(text.strip())
    except (ValueError, AttributeError, TypeError):
        raise PduError(f"PDU is not hexadecimal: {str(text)[:80]!r}") from None


def _guarded(what: str, pdu: bytes, parse: Callable[[_Reader], _T]) -> _T:
    if not isinstance(pdu, bytes | bytearray | memoryview):
        raise PduError(f"{what} must be bytes, got {type(pdu).__name__}")
    try:
        return parse(_Reader(bytes(pdu)))
    except PduError:
        raise
    except (gsm7.Gsm7Error, IndexError, ValueError, OverflowError, KeyError) as e:
        # Defence in depth: every path above is bounds-checked, but a modem line is untrusted.
        raise PduError(f"malformed {what}: {e}") from None


def decode_submit(pdu: bytes, *, with_smsc: bool = True) -> Submit:
    """Decode an SMS-SUBMIT (the MS -> SC direction); the SCA, if present, is skipped."""

    def parse(r: _Reader) -> Submit:
        if with_smsc:
            _decode_sca(r)
        first = r.octet("first octet")
        if first & 0x03 != 0x01:
            raise PduError(f"not an SMS-SUBMIT (first octet {first:02X})")
        mr = r.octet("message reference")
        destination = _decode_address(r, "destination")
        pid = r.octet("protocol identifier")
        dcs = r.octet("data coding scheme")
        vpf = (first >> 3) & 0x03
        validity: int | None = None
        if vpf == 0b10:
            validity = _vp_minutes(r.octet("validity period"))
        elif vpf:
            r.take(7, "validity period")  # absolute or enhanced: no duration without a clock
        coding = _coding_from_dcs(dcs)
        text, udh, concat = _decode_user_data(r, coding, bool(first & 0x40))
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

    def parse(r: _Reader) -> Deliver | StatusReport:
        smsc = _decode_sca(r) if with_smsc else None
        first = r.octet("first octet")
        mti = first & 0x03
        if mti == 0x00:
            sender = _decode_address(r, "originating address")
            pid = r.octet("protocol identifier")
            dcs = r.octet("data coding scheme")
            scts = _decode_timestamp(r, "SC timestamp")
            coding = _coding_from_dcs(dcs)
            text, udh, concat = _decode_user_data(r, coding, bool(first & 0x40))
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
            recipient = _decode_address(r, "recipient address")
            scts = _decode_timestamp(r, "SC timestamp")
            discharge = _decode_timestamp(r, "discharge time")
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
