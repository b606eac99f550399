"""Console building blocks without a server: the SMS counter, the chart's scale (sessions, which
live in the database, are in tests/store/test_console_contract.py)."""

from __future__ import annotations

import pytest

from simhive.agent.modem.pdu_userdata import split_text
from simhive.server.console.chart import HOURS, layout, scale_top
from simhive.server.console.overview import bars
from simhive.server.core.sms_parts import describe
from simhive.server.store.console_engine import console_store


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts", "left"),
    [
        ("", "GSM-7", 0, 0, 160),
        ("a" * 160, "GSM-7", 160, 1, 0),
        ("a" * 161, "GSM-7", 161, 2, 145),
        ("a" * 153 * 2, "GSM-7", 306, 2, 0),
        ("€" * 80, "GSM-7", 160, 1, 0),  # extension characters cost two septets
        ("€" * 81, "GSM-7", 162, 2, 143),  # an ESC pair is never split: 76 + 5
        ("é" * 70, "GSM-7", 70, 1, 90),  # é is in the GSM alphabet
        ("ж" * 70, "UCS-2", 70, 1, 0),
        ("ж" * 71, "UCS-2", 71, 2, 63),
        ("😀" * 35, "UCS-2", 70, 1, 0),  # outside the BMP: two UTF-16 units each
    ],
)
def test_the_counter_uses_the_senders_rules(
    text: str, encoding: str, units: int, parts: int, left: int
) -> None:
    info = describe(text)
    assert (info.encoding, info.units, info.parts, info.left) == (encoding, units, parts, left)
    assert info.chars == len(text) and info.error is None
    if text:
        assert len(split_text(text)[1]) == parts  # what the agent will actually send


def test_a_text_too_long_for_any_sms_says_so() -> None:
    info = describe("a" * 153 * 256)
    assert info.error is not None and "255" in info.error


def test_signal_bars_and_chart_scale() -> None:
    assert [bars(d) for d in (None, -110, -100, -90, -80, -60)] == [0, 0, 1, 2, 3, 4]
    assert [scale_top(n) for n in (0, 1, 3, 7, 11, 99, 101)] == [1, 1, 5, 10, 20, 100, 200]
    peak, drawn = layout({5: (10, 4)}, 0, [f"{h:02d}" for h in range(HOURS)])
    assert peak == 10 and len(drawn) == HOURS
    assert drawn[5].sent_h > drawn[5].delivered_h > 0 and drawn[4].sent_h == 0


def test_a_store_engine_without_console_queries_gets_none() -> None:
    # create_app then serves the APIs without the console and /metrics instead of failing.
    assert console_store(object()) is None
