"""The row readers and rules both engines' stores share (campaigns_base, otp_base, native_base,
console_base, sqlite_smpp): pinned here once, apart from either engine's SQL."""

from __future__ import annotations

from simhive.server.core.native_models import MessageQuery
from simhive.server.store.campaigns_base import counts_of
from simhive.server.store.console_base import histogram, like_pattern
from simhive.server.store.native_base import message_query_where
from simhive.server.store.otp_base import OtpTry, otp_verdict
from simhive.server.store.sqlite_smpp import CLAIMED, latest_parts, submit_of


def test_counts_of_a_cancelled_campaign_cancels_what_was_never_handed_over() -> None:
    counts = counts_of(("cancelled", 3, 1, 0, 2, 0, 1, 4, 99))
    assert (counts.pending, counts.cancelled, counts.queued, counts.last_change) == (0, 7, 1, 99)
    running = counts_of(("running", 3, None, None, None, None, None, None, None))
    assert (running.pending, running.cancelled, running.delivered) == (3, 0, 0)
    assert running.last_change is None
    assert counts_of(None).pending == 0  # no row at all


def test_otp_verdict_rules_in_their_order() -> None:
    assert otp_verdict(None, 10, 3) == OtpTry("missing")
    assert otp_verdict(("h", 100, 0, 50), 10, 3) == OtpTry("locked", locked_until=50)
    assert otp_verdict((None, 100, 0, 5), 10, 3) == OtpTry("missing")  # lock over, code void
    assert otp_verdict(("h", 9, 0, None), 10, 3) == OtpTry("expired")
    assert otp_verdict(("h", 100, 3, None), 10, 3) == OtpTry("locked", locked_until=10)
    assert otp_verdict(("h", 100, 2, None), 10, 3) == OtpTry("ok", "h", 3)


def test_message_query_where_gives_each_engine_its_marks() -> None:
    q = MessageQuery(7, status=4, created_to=50, before=9)
    where, params = message_query_where(q, lambda n: f"${n}")
    assert where == (
        "m.account_id = $1 AND m.direction = $2 AND m.status = $3 AND m.created <= $4 AND m.id < $5"
    )
    assert params == [7, "out", 4, 50, 9]
    assert message_query_where(q, lambda _: "?")[0].count("?") == 5


def test_console_pattern_and_histogram() -> None:
    assert like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"
    h = histogram((4, 2_000_000, 1, None), (0.5, 1.0))
    assert (h.buckets, h.count, h.total) == ([(0.5, 1), (1.0, 0)], 4, 2.0)


def test_smpp_rows() -> None:
    parts = latest_parts([(1, "a", "p1"), (2, "b", "p2"), (1, "a2", "p3")])
    assert [(p.seq, p.text, p.smpp_id) for p in parts.values()] == [(1, "a2", "p3"), (2, "b", "p2")]
    assert submit_of(("p1", CLAIMED, 1, 5, 0)).sms_id is None
    assert submit_of(("7", 7, 1, 5, 1)) == submit_of(("7", 7, 1, 5, True))
