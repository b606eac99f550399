"""Delivery-report matching: a +CDS status report -> a sent part -> maybe a final message outcome.

A report carries only the part's TP-MR and the recipient. MRs are one octet and wrap after 256
submits, so a report is matched to the *most recent* part with that MR and recipient on the
same device and SIM (another SIM of the device if none), sent within a window (modems.md 6;
Gammu SMSD's DeliveryReportDelay is 600 s). A message is delivered when every part's report
is a success, not delivered as soon as one part failed for good; "SC still trying"
(0x20-0x3F) leaves it as sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.journal import Journal, SentPart
from agent.modem.base import DeliveryReport
from agent.modem.errors import ReportState, report_meaning, report_state

log = logging.getLogger(__name__)

UNMATCHED_SECONDS = 120.0  # how long a report may wait for its send to be journaled
UNMATCHED_KEEP = 256
OTHER_SLOT_AFTER = 10.0  # a held report may match the device's other SIM after this long


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
    da = "".join(c for c in a if c.isdigit())
    db = "".join(c for c in b if c.isdigit())
    if not da or not db:
        return a == b
    if da == db:
        return True
    n = min(len(da), len(db))
    return n >= 7 and da[-min(n, 9) :] == db[-min(n, 9) :]


@dataclass(frozen=True)
class MatchResult:
    msg_id: int
    part: int
    outcome: str  # "delivered" | "not_delivered" | "pending" | "partial"


class ReportMatcher:
    def __init__(
        self,
        journal: Journal,
        device: str,
        *,
        window: float = 600.0,
        slots: list[int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.device = device
        self.window = window
        self._clock = clock
        self.slots: list[int] = list(slots) if slots is not None else [0, 1]
        self._unmatched: list[tuple[float, DeliveryReport]] = []

    def other_slots(self, slot: int) -> list[int]:
        return [s for s in self.slots if s != slot]

    async def handle(self, report: DeliveryReport) -> MatchResult | None:
        """Apply one status report; returns what happened, or None when nothing matched.

        An unmatched report is kept for a while: a fast SC can report before the dispatcher
        has journaled the +CMGS answer it belongs to (the URC and the answer race).
        """
        result = await self._match(report)
        if result is None:
            self._unmatched.append((self._clock(), report))
            del self._unmatched[:-UNMATCHED_KEEP]
        return result

    @property
    def holding(self) -> bool:
        return bool(self._unmatched)

    async def retry_unmatched(self) -> list[MatchResult]:
        """Match held reports again (after each send is journaled, and on a timer)."""
        if not self._unmatched:
            return []
        now = self._clock()
        held = [(t, r) for t, r in self._unmatched if now - t < UNMATCHED_SECONDS]
        self._unmatched = []
        results = []
        for t, r in held:
            res = await self._match(r, quiet=True, other_slots=now - t >= OTHER_SLOT_AFTER)
            if res is None:
                self._unmatched.append((t, r))
            else:
                results.append(res)
        return results

    async def _match(
        self, report: DeliveryReport, *, quiet: bool = False, other_slots: bool = False
    ) -> MatchResult | None:
        now = self._clock()
        since = now - self.window
        candidates = await self.journal.parts_by_reference(
            self.device, report.slot, report.reference, since
        )
        part = next((p for p in candidates if same_number(p.to, report.recipient)), None)
        if part is None and other_slots:
            # Last resort, only for a report held a while without a match on its own SIM: a
            # backend may tag a report with the SIM active when it was read rather than the
            # sender's. Only parts still waiting for a final report qualify, so a report for
            # one SIM cannot land on an already reported part of the other (MRs count per SIM
            # and repeat; the recipient is often the same).
            for slot in self.other_slots(report.slot):
                others = await self.journal.parts_by_reference(
                    self.device, slot, report.reference, since
                )
                part = next(
                    (p for p in others if same_number(p.to, report.recipient) and _open(p)), None
                )
                if part is not None:
                    break
        if part is None:
            if quiet:
                return None
            log.info(
                "device %s: status report MR %d on SIM %d matches no part sent in the last %g s"
                " (held a while in case its send is still being journaled)",
                self.device, report.reference, report.slot, self.window,
            )  # fmt: skip
            return None
        kind = classify_tp_status(report.status)
        if part.tp_status is not None and classify_tp_status(part.tp_status) != ReportState.PENDING:
            # A second final report for the same part (SC repeats) changes nothing.
            return MatchResult(part.msg_id, part.idx, "duplicate")
        statuses = await self.journal.set_part_status(
            self.device, part.msg_id, part.idx, report.status
        )
        if kind == ReportState.FAILED:
            detail = (
                f"part {part.idx + 1} of {len(statuses)}: TP-ST 0x{report.status:02X}"
                f" ({report_meaning(report.status & 0xFF)})"
            )
            await self.journal.finish_delivery(self.device, part.msg_id, False, now, detail)
            return MatchResult(part.msg_id, part.idx, "not_delivered")
        if kind == ReportState.PENDING:
            return MatchResult(part.msg_id, part.idx, "pending")
        if all(s is not None and classify_tp_status(s) == ReportState.DELIVERED for s in statuses):
            await self.journal.finish_delivery(self.device, part.msg_id, True, now)
            return MatchResult(part.msg_id, part.idx, "delivered")
        return MatchResult(part.msg_id, part.idx, "partial")
