"""The server's encoding and part count (server/core/encoding.py) against the agent's own
splitter, which is what the modem sends: the two must agree on every text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.agent.modem.pdu_types import Coding
from simhive.agent.modem.pdu_userdata import split_text
from simhive.server.core.encoding import describe

# Characters that move the answer: ASCII, GSM extension characters (two septets), GSM-only
# letters, a character that forces UCS-2, one beyond the BMP (two UTF-16 units), and ` (not GSM).
ALPHABET = "aZ0 .\n{}[]~^|€\\ÄöñΔΩ✓😀`é"
EXAMPLES = ["", "a" * 160, "a" * 161, "€" * 80, "€" * 81, "✓" * 70, "✓" * 71, "😀" * 35,
            "😀" * 36, "a" * 152 + "€", "a" * 1000, "Grüße ✓ " * 9]  # fmt: skip


def agent(text: str) -> tuple[str, int]:
    coding, parts = split_text(text)
    return ("gsm7" if coding is Coding.GSM7 else "ucs2"), len(parts)


def test_known_edges() -> None:
    for text in EXAMPLES:
        assert describe(text) == agent(text), text[:20]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=400))
def test_agrees_with_the_agent(text: str) -> None:
    assert describe(text) == agent(text)
