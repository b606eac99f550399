"""The chaos suite's verdicts, rule by rule: a checker that cannot see a loss proves nothing."""

from __future__ import annotations

from tests.chaos.ledger import Row, Tally, tally, verdict


def test_one_send_and_a_final_report_is_delivered() -> None:
    assert verdict(Row(1, "a", 7), 1) == "delivered"
    assert verdict(Row(1, "a", 8), 1) == "delivered"  # the network said so: it did go out once


def test_two_sends_are_doubled_whatever_the_status_says() -> None:
    for status, code in ((7, None), (9, "unknown"), (9, "CMS 21"), (3, None)):
        assert verdict(Row(1, "a", status, code), 2) == "doubled"
    assert verdict(None, 3) == "doubled"


def test_outcome_unknown_is_legal_whether_or_not_it_left() -> None:
    assert verdict(Row(1, "a", 9, "unknown"), 0) == "unknown"
    assert verdict(Row(1, "a", 9, "unknown"), 1) == "unknown"


def test_missing_stuck_or_falsely_delivered_is_lost() -> None:
    assert verdict(None, 0) == "lost"
    assert verdict(Row(1, "a", 1), 0) == "lost"  # still new at the end
    assert verdict(Row(1, "a", 3), 0) == "lost"  # committed to an agent that never sent it
    assert verdict(Row(1, "a", 7), 0) == "lost"  # delivered, says the database; not the network


def test_a_failure_is_fine_unless_the_message_left() -> None:
    assert verdict(Row(1, "a", 10, "CMS 331"), 0) == "failed"
    assert verdict(Row(1, "a", 9, "CMS 21"), 1) == "misreported"


def test_sent_once_but_never_final_is_unfinished() -> None:
    assert verdict(Row(1, "a", 6), 1) == "unfinished"


def test_tally_matches_ids_texts_and_sends() -> None:
    answered = {1: "p 0.0", 2: "p 0.1", 3: "p 0.2", 4: "p 0.3", 5: "p 0.4"}
    rows = [Row(1, "p 0.0", 7), Row(2, "p 0.1", 9, "unknown"), Row(3, "p 0.2", 7),
            Row(4, "another text", 7),  # id 4 answered for p 0.3, but the row holds another
            Row(6, "p 0.9", 7)]  # fmt: skip
    sent = ["p 0.0", "p 0.1", "p 0.2", "p 0.2", "another text", "p 0.9", "p 0.9"]
    t = tally("k", answered, rows, sent)
    assert t.messages == 5
    # id 5 has no row; id 4's row is another message; p 0.9 was stored for an unanswered
    # request and still must not go out twice.
    assert dict(t.counts) == {"delivered": 1, "unknown": 1, "doubled": 2, "lost": 2}
    assert t.unknown_sent == 1 and t.unanswered == 2
    assert t.broken == 4
    assert any("id 5" in p and "missing" in p for p in t.problems)
    assert any("unanswered" in p and "p 0.9" in p for p in t.problems)


def test_tallies_add_up() -> None:
    a = tally("k", {1: "x"}, [Row(1, "x", 7)], ["x"])
    b = tally("k", {2: "y"}, [], [])
    total = Tally("total")
    total.add(a)
    total.add(b)
    assert total.messages == 2 and total.broken == 1 and total.counts["delivered"] == 1
