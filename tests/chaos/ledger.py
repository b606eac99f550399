"""Per-message bookkeeping of a chaos run: what the clients were told, what the server's database
says, and what the network (the emulator's SMSC) really received.

Pure logic over plain data, so the rules themselves are unit-tested (test_ledger.py) apart from
any process. Every message a client got an id for ends in exactly one of these verdicts:

- `delivered`: it left once and its final status is 7 or 8 (the report said so);
- `unknown`: status 9 with the outcome-unknown code; it left at most once (legal after a crash
  during its AT+CMGS: the agent may not know and must not guess by sending again);
- `failed`: any other final failure, and it never left;
- `lost`: its row is missing, or it never left and has no final failure status by the end
  (still waiting, or a final 7/8 the network never saw);
- `doubled`: the network received it two or more times, whatever the database says;
- `misreported`: a final failure although it left (a client would send it again);
- `unfinished`: it left once but never reached a final status by the end.

Doubles are looked for over every text the run sent, so a message stored for a request whose
answer never arrived (a server killed mid-answer) counts too: it was not promised, but it must
not go out twice either.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DELIVERED, NOT_DELIVERED = 7, 8
FAILURES = frozenset({9, 10, 11, 12, 100, 101})
FINAL = FAILURES | {DELIVERED, NOT_DELIVERED}
UNKNOWN_CODE = "unknown"  # failure_code of an outcome-unknown event (docs/agent-protocol.md)

VERDICTS = ("delivered", "unknown", "failed", "lost", "doubled", "misreported", "unfinished")
# Verdicts that break a promise: the run exits non-zero on any of them.
BROKEN = ("lost", "doubled", "misreported", "unfinished")


@dataclass(frozen=True, slots=True)
class Row:
    """One outgoing message as the server's database holds it."""

    sms_id: int
    body: str
    status: int
    failure_code: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def outcome_unknown(self) -> bool:
        return self.status in FAILURES and self.failure_code == UNKNOWN_CODE


def verdict(row: Row | None, sends: int) -> str:
    """The verdict of one answered message, from its row (None: missing) and how many times the
    network received its text."""
    if sends >= 2:
        return "doubled"
    if row is None:
        return "lost"
    if row.outcome_unknown:
        return "unknown"
    if row.status in FAILURES:
        return "misreported" if sends else "failed"
    if sends == 0:
        return "lost"  # still waiting at the end, or "delivered" without ever leaving
    return "delivered" if row.final else "unfinished"


@dataclass
class Tally:
    """The figures of one kind of trial."""

    kind: str
    trials: int = 0
    seconds: float = 0.0
    messages: int = 0  # answered ids judged
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    unknown_sent: int = 0  # outcome-unknown messages that did reach the network (once)
    unanswered: int = 0  # stored for a request whose answer never arrived (not promised)
    # One line per broken message (verdict, id, text, status, sends), for the report.
    problems: list[str] = field(default_factory=list)
    # What the kind counted besides verdicts (ChaosGateway.figures), e.g. pool-kill's.
    figures: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def broken(self) -> int:
        return sum(self.counts[v] for v in BROKEN)

    def add(self, other: Tally) -> None:
        self.trials += other.trials
        self.seconds += other.seconds
        self.messages += other.messages
        self.counts.update(other.counts)
        self.unknown_sent += other.unknown_sent
        self.unanswered += other.unanswered
        self.problems += other.problems
        self.figures.update(other.figures)


def tally(
    kind: str,
    answered: Mapping[int, str],
    rows: Iterable[Row],
    sent_texts: Iterable[str],
) -> Tally:
    """Judge every answered message.

    answered: id -> text as the client was told; rows: the database's rows of this run's texts
    (answered or not); sent_texts: the text of every part the network accepted (one per AT+CMGS).
    """
    sends = collections.Counter(sent_texts)
    by_id = {r.sms_id: r for r in rows}
    out = Tally(kind, messages=len(answered))
    for sms_id, text in answered.items():
        row = by_id.get(sms_id)
        if row is not None and row.body != text:
            row = None  # another message under this id: the answered one is gone
        v = verdict(row, sends[text])
        out.counts[v] += 1
        if v == "unknown" and sends[text]:
            out.unknown_sent += 1
        if v in BROKEN:
            status = "missing" if row is None else str(row.status)
            out.problems.append(f"{v}: id {sms_id} {text!r} status {status} sent {sends[text]}x")
    answered_texts = set(answered.values())
    out.unanswered = sum(1 for r in by_id.values() if r.body not in answered_texts)
    for text, n in sends.items():
        if n >= 2 and text not in answered_texts:
            out.counts["doubled"] += 1
            out.problems.append(f"doubled (unanswered request): {text!r} sent {n}x")
    return out
