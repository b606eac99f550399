"""The compat API's own query/form splitter agrees with the standard library's parse_qsl, except
that escapes whose bytes are not UTF-8 are kept as written instead of replaced."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from simhive.server.api.params import _unquote, parse_pairs

# Text made of the characters that matter to the splitter, plus anything else.
PIECES = st.lists(
    st.one_of(st.sampled_from(["&", "=", "+", "%", "%2", "%2B", "%ff", "%C3%A4", "%00", "%%", " "]),
              st.text(max_size=4)),
    max_size=12,
).map("".join)  # fmt: skip


def _kept(text: str) -> str:
    """The stdlib's decode with every byte that is not UTF-8 written back as its escape (in
    upper case: the comparisons below ignore the case of what was kept)."""
    return re.sub("[\udc80-\udcff]", lambda m: f"%{ord(m.group()) - 0xDC00:02X}", text)


def _upper(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k.upper(), v.upper()) for k, v in pairs]


@given(PIECES)
def test_same_pairs_as_parse_qsl(text: str) -> None:
    ours = parse_pairs(text)
    try:
        assert ours == parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        stdlib = parse_qsl(text, keep_blank_values=True, errors="surrogateescape")
        assert _upper(ours) == _upper([(_kept(k), _kept(v)) for k, v in stdlib])


@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6))
def test_round_trip_of_encoded_pairs(pairs: list[tuple[str, str]]) -> None:
    text = "&".join(
        f"{quote(k, safe='')}={quote(v, safe='')}".replace("%20", "+") for k, v in pairs
    )
    assert parse_pairs(text) == pairs


ESCAPES = st.lists(
    st.one_of(st.sampled_from(["%", "%2", "%2B", "%ff", "%C3", "%A4", "%C3%A4", "%e2%82", "%00",
                               "%%", "%zz", "+", "ä", "\x7f"]),
              st.text(max_size=3)),
    max_size=10,
).map("".join)  # fmt: skip


@given(ESCAPES)
def test_unquote_equals_the_stdlib_but_keeps_bad_escapes(text: str) -> None:
    ours = _unquote(text)
    try:
        assert ours == unquote(text, errors="strict")
    except UnicodeDecodeError:
        assert ours.upper() == _kept(unquote(text, errors="surrogateescape")).upper()
        assert "\ufffd" not in ours or "\ufffd" in text


def test_kept_escapes_keep_their_case() -> None:
    assert _unquote("50%de r%C3%A9duction") == "50%de réduction"
    assert _unquote("%e9t%C3%A9%Ff") == "%e9té%Ff"
