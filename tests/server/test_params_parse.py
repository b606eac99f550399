"""The compat API's own query/form splitter agrees with the standard library's parse_qsl."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

from hypothesis import given
from hypothesis import strategies as st

from server.api.params import parse_pairs

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
