"""Encoding a text costs no Python step per character: most SMS are one part, and a 160-character
text used to take about 30 function calls per character (the coding check, a cost per character,
the septet list and the packing), 80 us on x86 and several times that on a Raspberry Pi. The
splitting rule itself is unchanged: a reference copy of the per-character greedy split below
must agree with split_text on any text."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.agent.modem import gsm7
from simhive.agent.modem.pdu import encode_submit, split_text
from simhive.agent.modem.pdu_types import Coding
from simhive.agent.modem.pdu_userdata import LIMITS, cost
from tests.pdu.strategies import EMOJI, EXT_CHARS, GSM_CHARS, any_text


def python_calls(fn: Callable[[], Any]) -> int:
    """Python function calls (frames entered, generators' resumptions included) made by fn()."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def test_a_one_part_text_costs_the_same_calls_whatever_its_length() -> None:
    for alphabet, most in (("abc", 160), ("Привет", 70)):  # GSM 7-bit and UCS-2
        texts = (alphabet[:2], (alphabet * most)[:most])
        assert len(split_text(texts[1])[1]) == 1
        calls = []
        for text in texts:
            encode_submit("+4915752982212", text)  # a codec's first use imports it: not counted
            calls.append(python_calls(functools.partial(encode_submit, "+4915752982212", text)))
        assert calls[0] == calls[1], alphabet


def test_a_multipart_text_costs_calls_per_part_not_per_character() -> None:
    one = python_calls(lambda: encode_submit("+4915752982212", "x" * 200))  # 2 parts
    per_part = python_calls(lambda: encode_submit("+4915752982212", "x" * 400)) - one  # 3 parts
    assert per_part < 25  # a part's header and user data; 153 characters would be hundreds
    ext = python_calls(lambda: gsm7.encode("{}[]" * 40))
    assert ext == python_calls(lambda: gsm7.encode("{"))  # ESC pairs too


def reference_split(text: str, coding: Coding, ref16: bool) -> list[str]:
    """The greedy per-character split: a part ends where the next character would not fit."""
    single, per8, per16 = LIMITS[coding]
    if sum(cost(ch, coding) for ch in text) <= single:
        return [text]
    per_part = per16 if ref16 else per8
    parts: list[str] = []
    start = used = 0
    for i, ch in enumerate(text):
        c = cost(ch, coding)
        if used + c > per_part:
            parts.append(text[start:i])
            start, used = i, 0
        used += c
    parts.append(text[start:])
    return parts


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        any_text,
        st.text(alphabet=GSM_CHARS + EXT_CHARS, min_size=150, max_size=500),
        st.text(alphabet=st.sampled_from("aЖ" + EMOJI), min_size=60, max_size=300),
    ),
    ref16=st.booleans(),
)
def test_split_text_is_the_greedy_per_character_split(text: str, ref16: bool) -> None:
    coding, parts = split_text(text, ref16=ref16)
    assert parts == reference_split(text, coding, ref16)
    assert coding is (
        Coding.GSM7 if all(ch in GSM_CHARS + EXT_CHARS for ch in text) else Coding.UCS2
    )
    if coding is Coding.GSM7:
        assert gsm7.encode(text) == [s for ch in text for s in gsm7._ENCODE[ch]]
