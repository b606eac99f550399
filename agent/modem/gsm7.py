"""The GSM 03.38 / 3GPP TS 23.038 default 7-bit alphabet and its extension table, sans-IO.

Text <-> septet values, and septets <-> packed octets (with the fill bits that a user data header
in front of 7-bit text needs). Encoding uses the default table and its extension table only
(every phone can read that; anything else goes out as UCS2). Decoding also understands the
national language tables of TS 23.038 annex A for Turkish, Spanish and Portuguese, which phones
in those countries select with a user data header (IEI 0x24 single shift, 0x25 locking shift)
to stay in 7-bit. The Indic and Urdu tables are not included: their ids decode as the default.
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

# TS 23.038 annex A, by national language identifier. Locking shift tables are given as their
# differences from the default table; single shift tables replace the extension table whole.
# Checked entry by entry against two independent transcriptions (Android's GsmAlphabet and the
# gsmcodecs package); the Latin-script tables agree exactly.
_LOCKING_CHANGES: dict[int, dict[int, str]] = {
    1: {  # A.3.1 Turkish
        0x04: "€", 0x07: "ı", 0x0B: "Ğ", 0x0C: "ğ", 0x1C: "Ş", 0x1D: "ş", 0x40: "İ", 0x60: "ç",
    },
    3: {  # A.3.3 Portuguese
        0x04: "ê", 0x06: "ú", 0x07: "í", 0x08: "ó", 0x09: "ç", 0x0B: "Ô", 0x0C: "ô", 0x0E: "Á",
        0x0F: "á", 0x12: "ª", 0x13: "Ç", 0x14: "À", 0x15: "∞", 0x16: "^", 0x17: "\\", 0x18: "€",
        0x19: "Ó", 0x1A: "|", 0x1C: "Â", 0x1D: "â", 0x1E: "Ê", 0x24: "º", 0x40: "Í", 0x5B: "Ã",
        0x5C: "Õ", 0x5D: "Ú", 0x60: "~", 0x7B: "ã", 0x7C: "õ", 0x7D: "`",
    },
}  # fmt: skip
_COMMON_SHIFT = {0x0A: "\x0c", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "["}
_COMMON_SHIFT.update({0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€"})
SHIFT_TABLES: dict[int, dict[int, str]] = {
    0: EXTENSION_TABLE,
    1: {  # A.2.1 Turkish
        **_COMMON_SHIFT,
        0x47: "Ğ", 0x49: "İ", 0x53: "Ş", 0x63: "ç", 0x67: "ğ", 0x69: "ı", 0x73: "ş",
    },
    2: {  # A.2.2 Spanish
        **_COMMON_SHIFT,
        0x09: "ç", 0x41: "Á", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú", 0x61: "á", 0x69: "í", 0x6F: "ó",
        0x75: "ú",
    },
    3: {  # A.2.3 Portuguese
        **_COMMON_SHIFT,
        0x05: "ê", 0x09: "ç", 0x0B: "Ô", 0x0C: "ô", 0x0E: "Á", 0x0F: "á", 0x12: "Φ", 0x13: "Γ",
        0x15: "Ω", 0x16: "Π", 0x17: "Ψ", 0x18: "Σ", 0x19: "Θ", 0x1F: "Ê", 0x41: "À", 0x49: "Í",
        0x4F: "Ó", 0x55: "Ú", 0x5B: "Ã", 0x5C: "Õ", 0x61: "Â", 0x69: "í", 0x6F: "ó", 0x75: "ú",
        0x7B: "ã", 0x7C: "õ", 0x7F: "â",
    },
}  # fmt: skip


def _locking_table(language: int) -> str:
    table = list(DEFAULT_TABLE)
    for code, ch in _LOCKING_CHANGES[language].items():
        table[code] = ch
    return "".join(table)


LOCKING_TABLES: dict[int, str] = {0: DEFAULT_TABLE}
LOCKING_TABLES.update({lang: _locking_table(lang) for lang in _LOCKING_CHANGES})

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


def decode(septets: list[int], *, locking: int = 0, single: int = 0) -> str:
    """Septet values -> text. Never fails: unknown escapes degrade as TS 23.038 prescribes.

    `locking` and `single` are national language identifiers from the user data header; ids
    without a table here fall back to the default alphabet and extension table.
    """
    table = LOCKING_TABLES.get(locking, DEFAULT_TABLE)
    shift = SHIFT_TABLES.get(single, EXTENSION_TABLE)
    out: list[str] = []
    i = 0
    n = len(septets)
    while i < n:
        s = septets[i] & 0x7F
        i += 1
        if s != ESC:
            out.append(table[s])
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
        elif nxt in shift:
            out.append(shift[nxt])
        else:
            # 23.038: a code missing from the shift table shows as the main-table character.
            out.append(table[nxt])
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
