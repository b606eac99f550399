"""Delivery-report matching: multipart, MR wrap-around, time window, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simhive.agent.journal import HeldReport, Journal, LeasedMessage
from simhive.agent.modem.base import UNKNOWN_REFERENCE, DeliveryReport
from simhive.agent.modem.errors import ReportState
from simhive.agent.reports import (
    DUPLICATE_AFTER,
    HOLD_SECONDS,
    OTHER_SLOT_AFTER,
    ReportMatcher,
    classify_tp_status,
    same_number,
)

DEV = "hall"


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def sent(j: Journal, msg_id: int, to: str, refs: list[int], at: float, slot: int = 0) -> None:
    await j.add_leased(DEV, f"L{msg_id}", [LeasedMessage(msg_id, to, "x", slot, False)], at)
    await j.apply_commit(DEV, f"L{msg_id}", [msg_id], [])
    await j.begin_dispatch(DEV, msg_id, at)
    await j.finish_sent(DEV, msg_id, slot, refs, at)


def rep(ref: int, to: str, st: int = 0, slot: int = 0) -> DeliveryReport:
    return DeliveryReport(
        slot=slot, reference=ref, recipient=to, status=st, sc_timestamp=None, discharge_time=None
    )


async def report_types(j: Journal) -> list[str]:
    return [e.event_id for e in await j.pending_events(DEV, "report", 100)]


async def test_multipart_is_delivered_only_when_every_part_is(journal: Journal) -> None:
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    await sent(journal, 1, "+491601112233", [10, 11, 12], clock.t)
    clock.t += 5
    assert (await m.handle(rep(11, "+491601112233"))).outcome == "partial"  # type: ignore[union-attr]
    assert (await m.handle(rep(10, "+491601112233"))).outcome == "partial"  # type: ignore[union-attr]
    assert await journal.message_state(DEV, 1) == "sent"
    r = await m.handle(rep(12, "+491601112233"))
    assert r is not None and r.outcome == "delivered" and r.msg_id == 1
    assert await journal.message_state(DEV, 1) == "delivered"
    assert await report_types(journal) == ["1:sent", "1:delivered"]


async def test_one_failed_part_means_not_delivered(journal: Journal) -> None:
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    await sent(journal, 2, "+491601112233", [20, 21], clock.t)
    r = await m.handle(rep(21, "+491601112233", st=0x46))  # validity period expired
    assert r is not None and r.outcome == "not_delivered"
    later = await m.handle(rep(20, "+491601112233", st=0))
    assert later is not None and later.outcome != "delivered"
    events = await journal.pending_events(DEV, "report", 10)
    assert [e.event_id for e in events] == ["2:sent", "2:not_delivered"]
    assert "0x46" in events[1].body["reason"]


async def test_pending_status_leaves_message_sent_until_a_final_one(journal: Journal) -> None:
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    await sent(journal, 3, "+491601112233", [30], clock.t)
    r = await m.handle(rep(30, "+491601112233", st=0x21))  # SME busy, SC still trying
    assert r is not None and r.outcome == "pending"
    assert await journal.message_state(DEV, 3) == "sent"
    r = await m.handle(rep(30, "+491601112233", st=0x00))
    assert r is not None and r.outcome == "delivered"
    # The SC repeats itself: held a while first (it might be a newer send's, see below), then
    # taken for the repeat it is.
    assert await m.handle(rep(30, "+491601112233", st=0x00)) is None
    clock.t += DUPLICATE_AFTER
    assert [r.outcome for r in await m.retry_unmatched()] == ["duplicate"]
    assert await journal.held_reports(DEV) == []
    assert await report_types(journal) == ["3:sent", "3:delivered"]


async def test_mr_wraps_so_the_most_recent_part_in_the_window_wins(journal: Journal) -> None:
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    await sent(journal, 4, "+491601112233", [255], clock.t)
    clock.t += 100
    await sent(journal, 5, "+491601112233", [255], clock.t)  # 256 submits later, same MR
    await sent(journal, 6, "+491609999999", [0], clock.t)
    r = await m.handle(rep(255, "+491601112233"))
    assert r is not None and r.msg_id == 5
    r = await m.handle(rep(0, "+491609999999"))
    assert r is not None and r.msg_id == 6


async def test_window_and_recipient_and_slot_must_match(journal: Journal) -> None:
    clock = Clock()
    m = ReportMatcher(journal, DEV, window=600, clock=clock)
    await sent(journal, 7, "+491601112233", [70], clock.t)
    assert await m.handle(rep(70, "+491609999999")) is None  # another recipient
    assert await m.handle(rep(70, "+491609999999", slot=1)) is None  # another SIM, other number
    clock.t += 601
    assert await m.handle(rep(70, "+491601112233")) is None  # too late
    assert await journal.message_state(DEV, 7) == "sent"


async def test_national_format_echo_matches() -> None:
    assert same_number("+491601112233", "01601112233")
    assert same_number("+491601112233", "491601112233")
    assert not same_number("+491601112233", "+491601112234")
    assert not same_number("12345", "+4912345")  # too short to trust a suffix match


def test_tp_status_ranges() -> None:
    assert [classify_tp_status(s) for s in (0x00, 0x02, 0x1F)] == [ReportState.DELIVERED] * 3
    assert [classify_tp_status(s) for s in (0x20, 0x25, 0x3F)] == [ReportState.PENDING] * 3
    assert [classify_tp_status(s) for s in (0x40, 0x49, 0x60, 0x65, 0x7F, 0x80)] == [
        ReportState.FAILED
    ] * 6


async def test_report_tagged_with_the_other_sim_matches_only_after_a_hold(
    journal: Journal,
) -> None:
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock, slots=[0, 1])
    await sent(journal, 8, "+491601112233", [80], clock.t, slot=0)
    await sent(journal, 9, "+491601112233", [80], clock.t, slot=1)
    # Same MR and recipient on both SIMs: the report's own slot wins.
    r = await m.handle(rep(80, "+491601112233", slot=1))
    assert r is not None and r.msg_id == 9
    await sent(journal, 10, "+491605555555", [81], clock.t, slot=0)
    assert await m.handle(rep(81, "+491605555555", slot=1)) is None  # held, not guessed
    clock.t += 11
    results = await m.retry_unmatched()  # still nothing on SIM 2: the other SIM's open part
    assert [(x.msg_id, x.outcome) for x in results] == [(10, "delivered")]


async def test_a_racing_report_never_lands_on_the_other_sims_reported_part(
    journal: Journal,
) -> None:
    # SIM 1 sent #1 with MR 1 and it was delivered; SIM 2 then sends #2 to the same number and
    # also gets MR 1 (MRs count per SIM). #2's report beats its journal write.
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock, slots=[0, 1])
    await sent(journal, 1, "+4917012345678", [1], clock.t, slot=0)
    assert (await m.handle(rep(1, "+4917012345678", slot=0))).outcome == "delivered"  # type: ignore[union-attr]
    assert await m.handle(rep(1, "+4917012345678", slot=1)) is None
    await sent(journal, 2, "+4917012345678", [1], clock.t, slot=1)
    results = await m.retry_unmatched()
    assert [(x.msg_id, x.outcome) for x in results] == [(2, "delivered")]
    assert await journal.message_state(DEV, 2) == "delivered"


async def test_report_arriving_before_its_send_is_journaled_is_held(journal: Journal) -> None:
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    assert await m.handle(rep(90, "+491601112233")) is None  # the +CDS won the race
    assert [h.reference for h in await journal.held_reports(DEV)] == [90]  # on disk already
    await sent(journal, 11, "+491601112233", [90], clock.t)
    results = await m.retry_unmatched()
    assert [(r.msg_id, r.outcome) for r in results] == [(11, "delivered")]
    assert await journal.held_reports(DEV) == []
    assert not m.holding
    assert await m.retry_unmatched() == []


async def test_a_held_report_survives_a_crash_and_matches_after_the_restart(
    tmp_path: Path,
) -> None:
    """The report is journaled before the handler returns (so before the modem acks or deletes
    it); the agent dies; the send's record had landed just before: the next start matches."""
    clock = Clock()
    j = Journal(tmp_path / "j.db")
    await j.open()
    assert await ReportMatcher(j, DEV, clock=clock).handle(rep(7, "+491601112233")) is None
    await sent(j, 21, "+491601112233", [7], clock.t)
    await j.close()  # kill -9 here: no retry ran

    clock.t += 3 * 3600  # the agent was down for hours: the report's own arrival time counts
    j2 = Journal(tmp_path / "j.db")
    await j2.open()
    m = ReportMatcher(j2, DEV, clock=clock)
    assert m.holding  # a fresh matcher looks at what a previous run left
    results = await m.retry_unmatched()
    assert [(r.msg_id, r.outcome) for r in results] == [(21, "delivered")]
    assert await j2.message_state(DEV, 21) == "delivered"
    assert [e.event_id for e in await j2.pending_events(DEV, "report", 10)] == [
        "21:sent",
        "21:delivered",
    ]
    await j2.close()


async def test_a_report_nobody_claims_is_dropped_with_a_warning_after_the_hold(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    assert await m.handle(rep(91, "+491601112233", st=0x46)) is None
    clock.t += HOLD_SECONDS - 1
    assert await m.retry_unmatched() == []
    assert len(await journal.held_reports(DEV)) == 1
    clock.t += 2
    assert await m.retry_unmatched() == []
    assert await journal.held_reports(DEV) == []
    assert not m.holding and m.dropped == 1
    assert "dropping a status report held" in caplog.text and "MR 91" in caplog.text


async def test_a_held_pending_or_repeated_report_is_consumed(journal: Journal) -> None:
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    assert await m.handle(rep(40, "+491601112233", st=0x21)) is None  # SC still trying
    assert await m.handle(rep(40, "+491601112233", st=0x00)) is None
    assert await m.handle(rep(40, "+491601112233", st=0x00)) is None  # the SC repeats itself
    await sent(journal, 31, "+491601112233", [40], clock.t)
    results = await m.retry_unmatched()
    assert [r.outcome for r in results] == ["pending", "delivered"]
    clock.t += DUPLICATE_AFTER
    assert [r.outcome for r in await m.retry_unmatched()] == ["duplicate"]
    assert await journal.held_reports(DEV) == []
    assert await report_types(journal) == ["31:sent", "31:delivered"]


async def test_after_mr_wrap_an_early_report_waits_for_its_own_part(journal: Journal) -> None:
    """256 submits ago a part got the same MR (same recipient) and was delivered. The new
    send's report beats its journal write: it must not be taken for a repeat of the old one."""
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    await sent(journal, 1, "+4917012345678", [200], clock.t)
    assert (await m.handle(rep(200, "+4917012345678"))).outcome == "delivered"  # type: ignore[union-attr]
    clock.t += 300  # within the window: MRs wrapped on a busy SIM
    assert await m.handle(rep(200, "+4917012345678", st=0x41)) is None  # held, not a repeat
    await sent(journal, 2, "+4917012345678", [200], clock.t)
    results = await m.retry_unmatched()
    assert [(r.msg_id, r.outcome) for r in results] == [(2, "not_delivered")]
    assert await journal.message_state(DEV, 1) == "delivered"


async def test_a_report_held_while_a_retry_runs_is_not_forgotten(journal: Journal) -> None:
    """Retries run after every send; one that read the held list just before a new report was
    held must not clear the matcher's 'holding' flag (the report would then wait for the next
    hold to be looked at again; seen as messages left at 'sent' with 16 modems)."""
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    assert await m.retry_unmatched() == []  # the start-up look: nothing held
    assert await m.handle(rep(5, "+491601112233")) is None  # an early report...
    await sent(journal, 7, "+491601112233", [5], clock.t)  # ...whose send is now journaled
    real = journal.held_reports
    read, go_on = asyncio.Event(), asyncio.Event()

    async def slow_read(device: str) -> list[HeldReport]:
        rows = await real(device)
        read.set()
        await go_on.wait()
        return rows

    journal.held_reports = slow_read  # type: ignore[method-assign]
    retry = asyncio.create_task(m.retry_unmatched())
    await read.wait()
    assert await m.handle(rep(6, "+491601112233")) is None  # held while the retry runs
    go_on.set()
    assert [(r.msg_id, r.outcome) for r in await retry] == [(7, "delivered")]
    assert m.holding
    journal.held_reports = real  # type: ignore[method-assign]
    await sent(journal, 8, "+491601112233", [6], clock.t)
    assert [(r.msg_id, r.outcome) for r in await m.retry_unmatched()] == [(8, "delivered")]


async def test_a_report_tagged_with_the_wrong_sim_finds_the_open_part_not_a_repeat(
    journal: Journal,
) -> None:
    """SIM 1's part with MR 3 was reported; SIM 2's part to the same number also has MR 3 (MRs
    count per SIM) and its report comes tagged SIM 1 (read while SIM 1 was active). It must
    not be taken for a repeat of SIM 1's report."""
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock, slots=[0, 1])
    await sent(journal, 1, "+4917012345678", [3], clock.t, slot=0)
    await sent(journal, 2, "+4917012345678", [3], clock.t, slot=1)
    assert (await m.handle(rep(3, "+4917012345678", slot=0))).msg_id == 1  # type: ignore[union-attr]
    assert await m.handle(rep(3, "+4917012345678", slot=0)) is None
    clock.t += max(DUPLICATE_AFTER, OTHER_SLOT_AFTER)
    assert [(r.msg_id, r.outcome) for r in await m.retry_unmatched()] == [(2, "delivered")]


async def test_part_sent_without_a_reference_matches_no_report(journal: Journal) -> None:
    # `+CMGS: ²`: sent, reference unknown. Stored as -1, which no report MR 0-255 equals (and
    # nothing masks it to 255); the event says null; it ends like a message whose report was lost.
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    await sent(journal, 7, "+491601112233", [UNKNOWN_REFERENCE, 41], clock.t)
    (event,) = await journal.pending_events(DEV, "report", 10)
    assert event.body["parts"] == [{"index": 0, "reference": None}, {"index": 1, "reference": 41}]
    clock.t += 5
    for mr in (255, 0, 1):
        assert await m.handle(rep(mr, "+491601112233")) is None
    assert (await m.handle(rep(41, "+491601112233"))).outcome == "partial"  # type: ignore[union-attr]
    assert await journal.message_state(DEV, 7) == "sent"
    assert await journal.expire_unreported(DEV, clock.t + 1, clock.t + 2, "no report") == [7]
    events = await journal.pending_events(DEV, "report", 10)
    assert events[-1].body["type"] == "unknown"
    assert events[-1].body["reason"] == (
        "no report (1 of 2 part report(s) received; 1 part(s) sent without a reference)"
    )


async def sent_unawaited(
    j: Journal, msg_id: int, to: str, ref: int, at: float
) -> asyncio.Future[None]:
    """The dispatcher's way: the "sent" write is queued, not waited for."""
    await j.add_leased(DEV, f"L{msg_id}", [LeasedMessage(msg_id, to, "x", 0, False)], at)
    await j.apply_commit(DEV, f"L{msg_id}", [msg_id], [])
    await j.begin_dispatch(DEV, msg_id, at)
    return j.finish_sent_nowait(DEV, msg_id, 0, [ref], at)


async def test_a_report_racing_the_queued_sent_write_matches_without_being_held(
    journal: Journal,
) -> None:
    """A fast SC's report comes while its part's "sent" write is queued but not committed:
    the matcher waits for that commit and matches at once; nothing is held on disk."""
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    pending = await sent_unawaited(journal, 31, "+491601112233", 77, clock.t)
    assert not pending.done()
    r = await m.handle(rep(77, "+491601112233"))
    assert r is not None and (r.msg_id, r.outcome) == (31, "delivered")
    assert pending.done()
    assert await journal.held_reports(DEV) == []
    assert await report_types(journal) == ["31:sent", "31:delivered"]


async def test_a_report_racing_the_send_itself_waits_for_it_on_its_sim(journal: Journal) -> None:
    """The report comes before the send has even returned to the dispatcher: with a send in
    flight on its SIM, the matcher waits for that send's outcome to be queued, then matches."""
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)
    returned = asyncio.Event()
    asked: list[int] = []

    async def in_flight(slot: int) -> None:
        asked.append(slot)
        await returned.wait()

    m.send_in_flight = in_flight

    async def dispatcher() -> None:
        await asyncio.sleep(0.05)  # the send returns a little after the report came
        await sent_unawaited(journal, 32, "+491601112233", 78, clock.t)
        returned.set()

    task = asyncio.create_task(dispatcher())
    r = await m.handle(rep(78, "+491601112233"))
    await task
    assert r is not None and (r.msg_id, r.outcome) == (32, "delivered")
    assert asked == [0]
    assert await journal.held_reports(DEV) == []


async def test_a_report_whose_send_never_comes_is_held_after_the_in_flight_one(
    journal: Journal,
) -> None:
    """The send in flight was another message: the report is held (on disk) as before."""
    clock = Clock()
    m = ReportMatcher(journal, DEV, clock=clock)

    async def in_flight(slot: int) -> None:
        await sent_unawaited(journal, 33, "+491601112233", 5, clock.t)

    m.send_in_flight = in_flight
    assert await m.handle(rep(79, "+491601112233")) is None
    assert [h.reference for h in await journal.held_reports(DEV)] == [79]
    assert m.holding
