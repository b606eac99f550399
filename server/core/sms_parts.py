"""How a text goes on the air: its coding (GSM-7 or UCS-2) and how many parts it is billed as.

The rules are the agent's own (simhive.agent.modem.pdu_userdata.split_text, which builds the
PDUs the modem sends), so what a form or an answer announces is what the network will bill:
160 GSM-7 characters in one SMS or 153 per part, 70 UCS-2 units or 67 per part; characters of the
GSM extension table (such as [ ] { } ~ € |) count twice, and a character outside the GSM alphabet
makes the whole text UCS-2.
"""

from __future__ import annotations

from dataclasses import dataclass

from simhive.agent.modem.pdu_types import Coding, PduError
from simhive.agent.modem.pdu_userdata import LIMITS, MAX_PARTS, cost, split_text

ENCODING_NAMES = {Coding.GSM7: "GSM-7", Coding.UCS2: "UCS-2"}


@dataclass(frozen=True, slots=True)
class TextInfo:
    chars: int  # characters as the user sees them (code points)
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 units (UCS-2) the text costs
    parts: int  # 0 for an empty text
    per_part: int  # units that fit in one part at this length (single or concatenated)
    left: int  # units left in the last part
    error: str | None = None  # the text cannot be sent as it is (too long, broken surrogate)


def describe(text: str) -> TextInfo:
    try:
        coding, parts = split_text(text)
    except PduError as exc:
        coding = Coding.GSM7 if all(cost(ch, Coding.GSM7) for ch in text) else Coding.UCS2
        units = sum(cost(ch, coding) for ch in text)
        return TextInfo(len(text), ENCODING_NAMES[coding], units, MAX_PARTS + 1, 0, 0, str(exc))
    single, per_concat, _ = LIMITS[coding]
    units = sum(cost(ch, coding) for ch in text)
    count = len(parts) if text else 0
    per_part = single if count <= 1 else per_concat
    last = sum(cost(ch, coding) for ch in parts[-1]) if text else 0
    return TextInfo(len(text), ENCODING_NAMES[coding], units, count, per_part, per_part - last)
