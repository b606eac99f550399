"""Field codecs shared by every TPDU type (3GPP TS 23.040 section 9.1.2 and 9.2.3).

A bounds-checked reader, BCD semi-octets, addresses (numeric and alphanumeric), the SMSC
field, service-centre timestamps, the relative validity period and the data coding scheme.
Each decoder raises `PduError` on malformed input, because a modem line is untrusted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from simhive.agent.modem import gsm7
from simhive.agent.modem.pdu_types import Coding, PduError

_NUMBER_RE = re.compile(r"\+?[0-9]{1,20}")
_TYPE_INTERNATIONAL = 0x91
_TYPE_UNKNOWN = 0x81
_TYPE_ALPHANUMERIC = 0xD0
_BCD_DIGITS = "0123456789*#abc"  # nibble F is the filler of an odd-length number


class Reader:
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


def bcd_swap(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex("".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2)))


def bcd_unswap(data: bytes, ndigits: int) -> str:
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


def encode_number_address(number: str, what: str) -> bytes:
    toa, digits = _number_parts(number, what)
    return bytes([len(digits), toa]) + bcd_swap(digits)


def encode_any_address(address: str, what: str) -> bytes:
    """A numeric address, or else an alphanumeric one (TON 5, packed GSM 7-bit, <= 11 septets)."""
    if isinstance(address, str) and _NUMBER_RE.fullmatch(address):
        return encode_number_address(address, what)
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


def decode_address(r: Reader, what: str) -> str:
    length = r.octet(f"{what} length")
    toa = r.octet(f"{what} type")
    data = r.take((length + 1) // 2, what)
    ton = (toa >> 4) & 0x07
    if ton == 5:
        return gsm7.decode(gsm7.unpack(data, length * 4 // 7))
    digits = bcd_unswap(data, length)
    return "+" + digits if ton == 1 and digits else digits


def encode_sca(smsc: str | None) -> bytes:
    if smsc is None:
        return b"\x00"
    toa, digits = _number_parts(smsc, "SMSC")
    body = bytes([toa]) + bcd_swap(digits)
    return bytes([len(body)]) + body


def decode_sca(r: Reader) -> str | None:
    length = r.octet("SMSC length")
    if length == 0:
        return None
    data = r.take(length, "SMSC address")
    if length == 1:
        return None  # a type octet without digits
    digits = bcd_unswap(data[1:], 2 * (length - 1))
    if not digits:
        return None
    return "+" + digits if (data[0] >> 4) & 0x07 == 1 else digits


def encode_timestamp(ts: datetime, what: str) -> bytes:
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
    return bcd_swap(digits) + bytes([tz_octet])


def decode_timestamp(r: Reader, what: str) -> datetime:
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


def vp_relative(minutes: int) -> int:
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


def vp_minutes(vp: int) -> int:
    if vp <= 143:
        return (vp + 1) * 5
    if vp <= 167:
        return 720 + (vp - 143) * 30
    if vp <= 196:
        return (vp - 166) * 1440
    return (vp - 192) * 10080


def coding_from_dcs(dcs: int) -> Coding:
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
