"""User data: choosing the coding, splitting a text into billed parts, and the UDH.

The part limits, the concatenation header (8- or 16-bit reference) and national language
shift elements, and the user data field itself with its 7-bit fill bits after a header.
"""

from __future__ import annotations

from dataclasses import dataclass

from simhive.agent.modem import gsm7
from simhive.agent.modem.pdu_fields import Reader
from simhive.agent.modem.pdu_types import Coding, Concat, PduError

# Octets/septets/UTF-16 units per SMS: (single, per part with 8-bit ref, per part with 16-bit ref).
# A concatenation UDH costs 6 or 7 octets; in 7-bit coding that is 7 or 8 septets incl. fill bits.
LIMITS: dict[Coding, tuple[int, int, int]] = {
    Coding.GSM7: (160, 153, 152),
    Coding.UCS2: (70, 67, 66),
    Coding.BIT8: (140, 134, 133),
}
DCS: dict[Coding, int] = {Coding.GSM7: 0x00, Coding.UCS2: 0x08, Coding.BIT8: 0x04}
MAX_PARTS = 255  # the concatenation header's total is one octet


_IEI_CONCAT8 = 0x00
_IEI_CONCAT16 = 0x08
_IEI_SINGLE_SHIFT = 0x24
_IEI_LOCKING_SHIFT = 0x25


def choose_coding(text: str, coding: Coding | None) -> Coding:
    if not isinstance(text, str):
        raise PduError("text must be a string")
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


def cost(ch: str, coding: Coding) -> int:
    if coding is Coding.GSM7:
        return gsm7.char_septets(ch)
    if coding is Coding.UCS2:
        return 2 if ord(ch) > 0xFFFF else 1
    return 1


def _units(text: str, coding: Coding) -> int:
    """sum(cost(ch, coding) for ch in text), in C: septets, UTF-16 code units or octets."""
    if coding is Coding.GSM7:
        return gsm7.septet_length(text)
    if coding is Coding.UCS2:
        # A lone surrogate is one unit, as cost() counts it; above U+FFFF a pair is two.
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    return len(text)


def _split(text: str, coding: Coding, ref16: bool) -> list[str]:
    """Greedy split on character boundaries, so an ESC pair or a surrogate pair stays whole."""
    single, per8, per16 = LIMITS[coding]
    units = _units(text, coding)  # counted without a Python step per character
    if units <= single:
        return [text]
    per_part = per16 if ref16 else per8
    if units == len(text):  # every character costs one unit: the parts are plain slices
        parts = [text[i : i + per_part] for i in range(0, len(text), per_part)]
    else:
        parts = []
        start = used = 0
        for i, c in enumerate(cost(ch, coding) for ch in text):
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
    chosen = choose_coding(text, coding)
    return chosen, _split(text, chosen, ref16)


def concat_udh(concat: Concat, ref16: bool) -> bytes:
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


def _header_septets(udh: bytes) -> tuple[int, int]:
    """(septets the UDH occupies, fill bits): 7-bit text starts on a septet boundary after it."""
    header_bits = 8 * len(udh)
    header_septets = -(-header_bits // 7)
    return header_septets, 7 * header_septets - header_bits


def encode_user_data(text: str, coding: Coding, udh: bytes) -> tuple[int, bytes]:
    """(UDL, UD) for one part; UDL counts septets in 7-bit coding, else octets."""
    if coding is Coding.GSM7:
        septets = gsm7.encode(text)
        header_septets, fill = _header_septets(udh)
        return header_septets + len(septets), udh + gsm7.pack(septets, fill)
    body = text.encode("utf-16-be") if coding is Coding.UCS2 else text.encode("latin-1")
    return len(udh) + len(body), udh + body


def decode_user_data(r: Reader, coding: Coding, has_udh: bool) -> tuple[str, bytes, Concat | None]:
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
        header_septets, fill = _header_septets(udh)
        if header_septets > udl:
            raise PduError(f"user data header ({len(udh)} octets) longer than UDL {udl}")
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
