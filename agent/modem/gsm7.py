"""The GSM 03.38 / 3GPP TS 23.038 default 7-bit alphabet and its extension table, sans-IO.

Text <-> septet values, and septets <-> packed octets (with the fill bits that a user data header
in front of 7-bit text needs). Only the default table and its single-shift extension table are
supported: national language shift tables are rarely used and decode here as the default table.
"""

from __future__ import annotations

ESC = 0x1B

# Position = septet value. 0x1B (ESC) holds a placeholder that is never looked up as a character.
DEFAULT_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(DEFAULT_TABLE) == 128

# TS 23.038 table 6.2.1.1: each of these costs two septets on the air, ESC plus this code.
EXTENSION_TABLE: dict[int, str] = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_ENCODE: dict[str, tuple[int, ...]] = {
    ch: (code,) for code, ch in enumerate(DEFAULT_TABLE) if code != ESC
}
_ENCODE.update({ch: (ESC, code) for code, ch in EXTENSION_TABLE.items()})


class Gsm7Error(ValueError):
    """Text that the GSM 7-bit alphabet cannot represent, or packed data too short."""


def char_septets(ch: str) -> int:
    """Septets one character costs (1 or 2), or 0 if it is not in the GSM alphabet."""
    enc = _ENCODE.get(ch)
    return len(enc) if enc is not None else 0


def is_gsm7(text: str) -> bool:
    return all(ch in _ENCODE for ch in text)


def septet_length(text: str) -> int:
    """Septets `text` needs; raises Gsm7Error if a character is not representable."""
    return len(encode(text))


def encode(text: str) -> list[int]:
    """Text -> septet values (extension characters become ESC pairs)."""
    out: list[int] = []
    for i, ch in enumerate(text):
        enc = _ENCODE.get(ch)
        if enc is None:
            raise Gsm7Error(f"character {ch!r} at position {i} is not in the GSM 7-bit alphabet")
        out.extend(enc)
    return out


def decode(septets: list[int]) -> str:
    """Septet values -> text. Never fails: unknown escapes degrade as TS 23.038 prescribes."""
    out: list[str] = []
    i = 0
    n = len(septets)
    while i < n:
        s = septets[i] & 0x7F
        i += 1
        if s != ESC:
            out.append(DEFAULT_TABLE[s])
            continue
        if i >= n:
            # A lone ESC at the end: 23.038 says a receiver that cannot use it shows a space.
            out.append(" ")
            break
        nxt = septets[i] & 0x7F
        i += 1
        if nxt == ESC:
            # ESC ESC is reserved for a further extension table that nobody defines.
            out.append(" ")
        elif nxt in EXTENSION_TABLE:
            out.append(EXTENSION_TABLE[nxt])
        else:
            # 23.038: a code missing from the extension table shows as the default-table character.
            out.append(DEFAULT_TABLE[nxt])
    return "".join(out)


def pack(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB-first into octets, starting `fill_bits` (0-6) into the first octet."""
    if not 0 <= fill_bits <= 6:
        raise Gsm7Error(f"fill bits must be 0-6, got {fill_bits}")
    value = 0
    for i, s in enumerate(septets):
        value |= (s & 0x7F) << (fill_bits + 7 * i)
    nbits = fill_bits + 7 * len(septets)
    return value.to_bytes((nbits + 7) // 8, "little")


def packed_length(count: int, fill_bits: int = 0) -> int:
    """Octets that `count` septets occupy after `fill_bits` fill bits."""
    return (fill_bits + 7 * count + 7) // 8


def unpack(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """The first `count` septets packed in `data` after `fill_bits` fill bits."""
    need = packed_length(count, fill_bits)
    if count < 0 or len(data) < need:
        raise Gsm7Error(f"{count} septets need {need} octets, only {len(data)} present")
    value = int.from_bytes(data[:need], "little") >> fill_bits
    return [(value >> (7 * i)) & 0x7F for i in range(count)]
