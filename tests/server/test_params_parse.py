"""The compat API's own query/form splitter agrees with the standard library's parse_qsl."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from server.api.params import _unquote, parse_pairs

# Text made of the characters that matter to the splitter, plus anything else.
PIECES = st.lists(
    st.one_of(st.sampled_from(["&", "=", "+", "%", "%2", "%2B", "%ff", "%C3%A4", "%00", "%%", " "]),
              st.text(max_size=4)),
    max_size=12,
).map("".join)  # fmt: skip


@given(PIECES)
def test_same_pairs_as_parse_qsl(text: str) -> None:
    assert parse_pairs(text) == parse_qsl(text, keep_blank_values=True, errors="replace")


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
def test_unquote_fast_path_equals_the_stdlib(text: str) -> None:
    # ASCII text takes unquote_to_bytes directly; anything else the stdlib's own unquote.
    assert _unquote(text) == unquote(text, errors="replace")
