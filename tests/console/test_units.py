"""Console building blocks without a server: sessions, the SMS counter, the chart's scale."""

from __future__ import annotations

import pytest

from simhive.agent.modem.pdu_userdata import split_text
from simhive.server.console.chart import HOURS, layout, scale_top
from simhive.server.console.overview import bars
from simhive.server.core.sessions import Sessions
from simhive.server.core.sms_parts import describe
from simhive.server.store.sqlite_console import console_store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_when_idle_and_at_their_maximum_age() -> None:
    clock = Clock()
    sessions = Sessions(idle_seconds=60, max_seconds=300, clock=clock)
    token, session = sessions.start(7)
    assert sessions.get(token) is session and session.account_id == 7
    clock.now += 59
    assert sessions.get(token) is session  # used: the idle clock starts again
    clock.now += 59
    assert sessions.peek(token) is session
    clock.now += 2  # peek does not count as use: 61 s idle now
    assert sessions.get(token) is None
    assert sessions.get(token) is None  # gone for good

    token, session = sessions.start(7)
    for _ in range(9):  # in constant use, but only up to the maximum age
        clock.now += 31
        assert sessions.get(token) is session
    clock.now += 31
    assert sessions.get(token) is None


def test_logout_ends_one_session_and_tokens_are_not_stored() -> None:
    sessions = Sessions()
    first, s1 = sessions.start(1)
    second, _ = sessions.start(1)
    sessions.end(first)
    assert sessions.get(first) is None and sessions.get(second) is not None
    assert first not in repr(sessions._by_hash)  # only digests are kept
    assert s1.csrf_ok(s1.csrf) and not s1.csrf_ok(None) and not s1.csrf_ok(s1.csrf + "x")
    sessions.end_account(1)
    assert len(sessions) == 0


def test_session_memory_is_bounded() -> None:
    sessions = Sessions(max_sessions=3)
    tokens = [sessions.start(i)[0] for i in range(5)]
    assert len(sessions) == 3
    assert sessions.get(tokens[0]) is None and sessions.get(tokens[4]) is not None


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
