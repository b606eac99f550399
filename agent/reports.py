"""Delivery-report matching: a +CDS status report -> a sent part -> maybe a final message outcome.

A report carries only the part's TP-MR and the recipient. MRs are one octet and wrap after 256
submits, so a report is matched to the *most recent* part with that MR and recipient on the
same device and SIM (another SIM of the device if none), sent within a window (600 s by
default, as Gammu SMSD's DeliveryReportDelay). A message is delivered when every part's report
is a success, not delivered as soon as one part failed for good; "SC still trying"
(0x20-0x3F) leaves it as sent.

A report that matches nothing yet is *held in the journal* before the handler returns, so
before the modem acks it (CNMA) or deletes it (CMGD): a fast SC can report before the
dispatcher has journaled the +CMGS answer it belongs to, and a kill -9 in that gap must not
lose the report. Held reports are matched again when a send is journaled, on a timer, and at
the next start; one still unmatched after `HOLD_SECONDS` is dropped with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from simhive.agent.journal import HeldReport, Journal, SentPart
from simhive.agent.modem.base import DeliveryReport
from simhive.agent.modem.errors import ReportState, report_meaning, report_state

log = logging.getLogger(__name__)

# How long a held report may wait for its send to be journaled. A send is journaled seconds
# after its +CMGS answer; longer means its message was dispatching at a crash (it is then
# outcome-unknown and has no parts to match) or the report is for a message we never sent.
HOLD_SECONDS = 600.0
OTHER_SLOT_AFTER = 10.0  # a held report may match the device's other SIM after this long
# A report whose newest match is a part that already has its final report is held this long
# before it counts as the SC repeating itself: MRs wrap after 256 submits, so on a busy SIM it
# may belong to a send whose +CMGS answer is not journaled yet, with the same MR as that older
# part (seen with 16 modems under a slowed agent: such reports were taken for repeats and
# their messages stayed at "sent").
DUPLICATE_AFTER = 10.0
# A report that matches nothing waits at most this long for the send in flight on its SIM to
# return and be queued for the journal, then is held. The modem's ack (CNMA) or delete waits
# for that send anyway: both need the AT channel, which the send holds.
IN_FLIGHT_WAIT = 2.0


def _open(part: SentPart) -> bool:
    return part.tp_status is None or report_state(part.tp_status & 0xFF) is ReportState.PENDING


def classify_tp_status(st: int) -> ReportState:
    """TS 23.040 9.2.3.15 via the shared table: 0x00-0x1F delivered, 0x20-0x3F SC still
    trying, 0x40-0x7F given up; reserved values count as failures (agent/modem/errors.py)."""
    return report_state(st & 0xFF)


def same_number(a: str, b: str) -> bool:
    """Compare a recipient from a report with the number we submitted to.

    Some SCs echo the number in national format (0151...) for an international submit
    (+49151...), so beyond exact digit equality the last 9 digits must agree.
    """
    da = "".join(c for c in a if "0" <= c <= "9")
    db = "".join(c for c in b if "0" <= c <= "9")
    if not da or not db:
        return a == b
    if da == db:
        return True
    n = min(len(da), len(db))
    return n >= 7 and da[-min(n, 9) :] == db[-min(n, 9) :]


def decide(statuses: list[int | None], reported_idx: int, st: int) -> tuple[str | None, str]:
    """The message's new state after part `reported_idx` got TP-ST `st`: not delivered as soon
    as one part failed, delivered when every part succeeded, else still sent (None)."""
    if classify_tp_status(st) is ReportState.FAILED:
        detail = (
            f"part {reported_idx + 1} of {len(statuses)}: TP-ST 0x{st:02X}"
            f" ({report_meaning(st & 0xFF)})"
        )
        return "not_delivered", detail
    if all(s is not None and classify_tp_status(s) is ReportState.DELIVERED for s in statuses):
        return "delivered", ""
    return None, ""


@dataclass(frozen=True)
class MatchResult:
    msg_id: int
    part: int
    outcome: str  # "delivered" | "not_delivered" | "pending" | "partial" | "duplicate"


class ReportMatcher:
    def __init__(
        self,
        journal: Journal,
        device: str,
        *,
        window: float = 600.0,
        slots: list[int] | None = None,
        clock: Callable[[], float] = time.time,
        hold_seconds: float = HOLD_SECONDS,
    ) -> None:
        self.journal = journal
        self.device = device
        self.window = window
        self.hold_seconds = hold_seconds
        self._clock = clock
        self.slots: list[int] = list(slots) if slots is not None else [0, 1]
        # True until a retry found nothing held: a previous run may have left reports behind.
        self._holding = True
        self._holds = 0  # reports held so far: a retry must not clear a hold it did not see
        self._retry_lock = asyncio.Lock()
        self.dropped = 0
        # slot -> returns once the send in flight on that SIM (if any) has its outcome queued
        # for the journal (Dispatcher.outcome_queued); set by the device's runner.
        self.send_in_flight: Callable[[int], Awaitable[None]] | None = None

    def other_slots(self, slot: int) -> list[int]:
        return [s for s in self.slots if s != slot]

    async def handle(self, report: DeliveryReport) -> MatchResult | None:
        """Apply one status report; returns what happened, or None when nothing matched.

        An unmatched report is journaled (on disk when this returns) and matched later.
        """
        now = self._clock()
        # A fast SC reports before the "sent" write of its part has committed (the dispatcher
        # does not wait for it), even before the send has returned to the dispatcher: waiting
        # for the writes queued so far (at most one group commit) and, if it still matches
        # nothing, for the send in flight on its SIM lets it match now instead of being held,
        # written, read back and matched again later.
        await self.journal.settled()
        result = await self._match(report, now)
        if result is None and self.send_in_flight is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.send_in_flight(report.slot), IN_FLIGHT_WAIT)
                await self.journal.settled()
                result = await self._match(report, now)
        if result is None:
            await self.journal.hold_report(
                self.device, report.slot, report.reference, report.recipient, report.status, now
            )
            self._holds += 1
            self._holding = True
        return result

    @property
    def holding(self) -> bool:
        return self._holding

    async def retry_unmatched(self) -> list[MatchResult]:
        """Match held reports again (after each send is journaled, on a timer, at start-up);
        drop those older than `hold_seconds` that still match nothing."""
        if not self._holding:
            return []
        async with self._retry_lock:
            return await self._retry()

    async def _retry(self) -> list[MatchResult]:
        holds_before = self._holds
        held = await self.journal.held_reports(self.device)
        now = self._clock()
        results: list[MatchResult] = []
        expired: list[HeldReport] = []
        for h in held:
            report = DeliveryReport(
                slot=h.slot, reference=h.reference, recipient=h.recipient, status=h.tp_status,
                sc_timestamp=None, discharge_time=None,
            )  # fmt: skip
            res = await self._match(
                report, h.received_at, held_seq=h.seq,
                other_slots=now - h.received_at >= OTHER_SLOT_AFTER,
            )  # fmt: skip
            if res is not None:
                results.append(res)
            elif now - h.received_at >= self.hold_seconds:
                expired.append(h)
        for h in expired:
            log.warning(
                "device %s: dropping a status report held %.0f s without a match: MR %d,"
                " recipient %s, SIM %d, TP-ST 0x%02X (its message was probably being sent when"
                " the agent stopped, and is outcome-unknown)",
                self.device, now - h.received_at, h.reference, h.recipient, h.slot + 1,
                h.tp_status,
            )  # fmt: skip
        if expired:
            await self.journal.drop_held([h.seq for h in expired])
            self.dropped += len(expired)
        # A report held while this retry ran (after it read the held list) is still waiting.
        self._holding = len(held) > len(results) + len(expired) or self._holds != holds_before
        return results

    async def _match(
        self,
        report: DeliveryReport,
        received_at: float,
        *,
        held_seq: int | None = None,
        other_slots: bool = False,
    ) -> MatchResult | None:
        since = received_at - self.window
        candidates = await self.journal.parts_by_reference(
            self.device, report.slot, report.reference, since
        )
        part = next((p for p in candidates if same_number(p.to, report.recipient)), None)
        if (part is None or not _open(part)) and other_slots:
            # Last resort, only for a report held a while without an open match on its own
            # SIM (none, or only a part already reported, which would make it a repeat): a
            # backend may tag a report with the SIM active when it was read rather than the
            # sender's. Only parts still waiting for a final report qualify, so a report for
            # one SIM cannot land on an already reported part of the other (MRs count per SIM
            # and repeat; the recipient is often the same).
            for slot in self.other_slots(report.slot):
                others = await self.journal.parts_by_reference(
                    self.device, slot, report.reference, since
                )
                other = next(
                    (p for p in others if same_number(p.to, report.recipient) and _open(p)), None
                )
                if other is not None:
                    part = other
                    break
        if part is None:
            if held_seq is None:
                log.info(
                    "device %s: status report MR %d on SIM %d matches no part sent in the last"
                    " %g s; held in the journal in case its send is still being journaled",
                    self.device, report.reference, report.slot + 1, self.window,
                )  # fmt: skip
            return None
        if not _open(part):
            if self._clock() - received_at < DUPLICATE_AFTER:
                return None  # held: its own part may not be journaled yet (see DUPLICATE_AFTER)
            # A second final report for the same part (the SC repeats) changes nothing.
            if held_seq is not None:
                await self.journal.drop_held([held_seq])
            return MatchResult(part.msg_id, part.idx, "duplicate")
        st = report.status
        statuses, state = await self.journal.apply_report(
            self.device, part.msg_id, part.idx, st,
            lambda sts: decide(sts, part.idx, st), self._clock(), held_seq=held_seq,
        )  # fmt: skip
        if state is not None:
            return MatchResult(part.msg_id, part.idx, state)
        if classify_tp_status(st) is ReportState.PENDING:
            return MatchResult(part.msg_id, part.idx, "pending")
        if classify_tp_status(st) is ReportState.FAILED:
            return MatchResult(part.msg_id, part.idx, "not_delivered")  # already final before
        return MatchResult(part.msg_id, part.idx, "partial")
