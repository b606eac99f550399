"""How a text goes on the air: GSM 7-bit or UCS-2, and how many parts (what a SIM is billed).

The server does not import the agent, so this is the agent's rule restated (agent/modem/gsm7.py
and pdu_userdata.py, compared text by text in tests/server/test_api_v1_encoding.py): a text of
only GSM 03.38 default-alphabet and extension-table characters goes as 7-bit, where an extension
character costs two septets; anything else as UCS-2, where a character beyond the BMP costs two
units. One part holds 160 septets or 70 units; a longer text is split greedily on character
boundaries into parts of 153 or 67 (the concatenation header takes the rest).
"""

from __future__ import annotations

_DEFAULT = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_EXTENSION = frozenset("\x0c^{}\\[~]|€")
_LIMITS = {"gsm7": (160, 153), "ucs2": (70, 67)}


def encoding_of(text: str) -> str:
    for ch in text:
        if ch not in _DEFAULT and ch not in _EXTENSION:
            return "ucs2"
    return "gsm7"


def _cost(ch: str, encoding: str) -> int:
    if encoding == "gsm7":
        return 2 if ch in _EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def parts_of(text: str, encoding: str | None = None) -> int:
    """The number of parts `text` is sent as."""
    encoding = encoding or encoding_of(text)
    single, per_part = _LIMITS[encoding]
    if encoding == "gsm7" and text.isascii() and not any(c in _EXTENSION for c in text):
        if len(text) <= single:  # the common case, without a walk per character
            return 1
        return -(-len(text) // per_part)
    costs = [_cost(ch, encoding) for ch in text]
    if sum(costs) <= single:
        return 1
    parts, used = 1, 0
    for c in costs:
        if used + c > per_part:
            parts, used = parts + 1, 0
        used += c
    return parts


def describe(text: str) -> tuple[str, int]:
    """(encoding, parts) of a text."""
    encoding = encoding_of(text)
    return encoding, parts_of(text, encoding)
