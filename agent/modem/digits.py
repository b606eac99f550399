"""Numbers in modem text: ASCII digits only.

The AT decoder keeps 8-bit bytes of a coded line as Latin-1 (an operator name in a vendor
charset), so line noise reaches the reply parsers as characters such as `²` (0xB2), `³` (0xB3)
and `¹` (0xB9). `str.isdigit()` accepts those and `int()` then raises ValueError; `int()` alone
also accepts signs, spaces, underscores and other scripts' digits. A field that is not plain
ASCII digits is not a number the modem meant, so every parser reads numbers through here and
takes anything else for "unknown".
"""

from __future__ import annotations

import re

__all__ = ["is_digits", "parse_uint"]

# (Patterns elsewhere say `[0-9]`, not `\d`: in a str pattern `\d` is any Unicode digit.)
_DIGITS_RE = re.compile(r"[0-9]+")
# No field of a reply is longer; int() refuses strings of over 4,300 digits with ValueError.
_MAX_LEN = 18


def is_digits(text: str) -> bool:
    """True when `text` is one or more ASCII digits and nothing else."""
    return _DIGITS_RE.fullmatch(text) is not None


def parse_uint(text: str, maximum: int | None = None) -> int | None:
    """`text` as a non-negative integer, or None when it is not ASCII digits (surrounding
    whitespace allowed), is longer than any reply field, or is above `maximum`."""
    text = text.strip()
    if len(text) > _MAX_LEN or _DIGITS_RE.fullmatch(text) is None:
        return None
    value = int(text)
    return value if maximum is None or value <= maximum else None
