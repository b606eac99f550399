"""The virtual network: an SMSC that routes submitted parts between emulated SIMs and reports.

Parts are passed through one by one with their concatenation header, as a real network does:
reassembly is the receiving client's job. A part for a SIM that cannot take it (unplugged,
inactive slot of a single-standby modem, no network, full storage) is held and retried, and its
status report follows the actual delivery. Destinations outside the emulated set are delivered
or failed by rule. Every accepted submit is recorded for GET /submitted.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fnmatch
import itertools
import json
import logging
import random
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from simhive.agent.modem import pdu

from .modem import IncomingReport, IncomingSms

if TYPE_CHECKING:
    from .modem import VirtualModem

log = logging.getLogger(__name__)

# TP-ST per outcome name (23.040 9.2.3.15).
MAX_SUBMITTED = 100_000  # entries kept for GET /submitted

OUTCOMES = {"delivered": 0x00, "failed": 0x41, "expired": 0x46, "rejected": 0x43}


class NetworkError(ValueError):
    pass


@dataclass
class Rule:
    """Outcome for destinations matching a glob; `status` None means no report is ever sent."""

    pattern: str
    outcome: str
    status: int | None
    delay: float | None = None

    def describe(self) -> dict[str, object]:
        return asdict(self)


def make_rule(
    pattern: str, outcome: str, status: int | None = None, delay: float | None = None
) -> Rule:
    if outcome == "none":
        return Rule(pattern, outcome, None, delay)
    if outcome not in OUTCOMES:
        raise NetworkError(f"outcome must be one of {sorted(OUTCOMES)} or 'none', got {outcome!r}")
    if status is not None and not 0 <= status <= 255:
        raise NetworkError(f"status must be 0..255, got {status}")
    return Rule(pattern, outcome, OUTCOMES[outcome] if status is None else status, delay)


@dataclass
class Submitted:
    id: int
    modem: str
    slot: int
    sender: str
    destination: str
    text: str
    coding: str
    part: int
    parts: int
    concat_reference: int | None
    reference: int
    status_report: bool
    mode: str  # "pdu" | "text"
    pdu: str
    monotonic: float  # time.monotonic() of the +CMGS final answer (CLOCK_MONOTONIC, system-wide)
    time: datetime
    report_status: int | None = None
    delivered: bool = False
    # json() text of the fields that never change after the submit, made at its first call
    _json_head: str | None = field(default=None, init=False, repr=False, compare=False)

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id,
            "modem": self.modem,
            "slot": self.slot,
            "from": self.sender,
            "to": self.destination,
            "text": self.text,
            "coding": self.coding,
            "part": self.part,
            "parts": self.parts,
            "concat_reference": self.concat_reference,
            "reference": self.reference,
            "status_report": self.status_report,
            "mode": self.mode,
            "pdu": self.pdu,
            "monotonic": self.monotonic,
            "time": self.time.isoformat(),
            "delivered": self.delivered,
            "report_status": self.report_status,
        }

    def json(self) -> str:
        """json.dumps(self.describe()), character for character. GET /submitted is polled while
        a batch runs and answers every record each time: only `delivered` and `report_status`
        change after the submit (they come last), so the rest is encoded once."""
        head = self._json_head
        if head is None:
            fixed = self.describe()
            del fixed["delivered"], fixed["report_status"]
            head = self._json_head = json.dumps(fixed)[:-1]
        delivered = "true" if self.delivered else "false"
        # an int, as json.dumps writes one (int.__repr__), without the encoder's set-up per call
        status = "null" if self.report_status is None else int.__repr__(self.report_status)
        return f'{head}, "delivered": {delivered}, "report_status": {status}}}'


@dataclass
class _Pending:
    number: str
    kind: str  # "sms" | "report"
    payload: IncomingSms | IncomingReport
    on_done: Any = None
    created: float = field(default_factory=time.monotonic)
    record: Submitted | None = None  # the submit this delivery belongs to, for expiry reports


class Network:
    def __init__(
        self,
        *,
        report_delay: float = 0.0,
        report_outcome: str = "delivered",
        latency: float = 0.0,
    ) -> None:
        self.report_delay = report_delay
        self.default = make_rule("*", report_outcome)
        self.rules: list[Rule] = []
        self.latency = latency
        self.latency_jitter = 0.0  # each submit takes latency +- up to this (uniform)
        self._jitter = random.Random(0)
        self.ack_timeout = 5.0  # seconds a direct +CMT/+CDS waits for AT+CNMA (CSMS service 1)
        # seconds the SMSC keeps trying an unreachable SIM before it reports expiry; None = forever
        self.hold_limit: float | None = None
        # the SMSC's time zone in SC time stamps (real networks send local time with an offset)
        self.sc_utc_offset = 0  # minutes, a multiple of 15
        self._sc_tz, self._sc_tz_offset = UTC, 0
        self.modems: dict[str, VirtualModem] = {}
        self._numbers: dict[str, tuple[VirtualModem, int]] = {}
        self.submitted: list[Submitted] = []
        self._ids = itertools.count(1)
        self._pending: deque[_Pending] = deque()
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inject_ref = itertools.count(1)

    # ---- set-up -------------------------------------------------------------------------------

    def add_modem(self, modem: VirtualModem) -> None:
        self.modems[modem.id] = modem
        for state in modem.sims:
            self._numbers[state.sim.number] = (modem, state.sim.slot)

    def start(self) -> None:
        self._task = asyncio.create_task(self._retry_loop(), name="smsc-retry")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self) -> None:
        self._kick.set()

    def configure(self, spec: Any) -> None:
        """POST /network: report_delay, report_outcome, latency, rules [{pattern, outcome, ...}]."""
        if not isinstance(spec, dict):
            raise NetworkError("expected a JSON object")
        known = {
            "report_delay",
            "report_outcome",
            "latency",
            "latency_jitter",
            "rules",
            "ack_timeout",
            "hold_limit",
            "sc_utc_offset",
        }
        unknown = set(spec) - known
        if unknown:
            raise NetworkError(f"unknown field(s) {sorted(unknown)}")
        delay, default, latency, rules = self.report_delay, self.default, self.latency, self.rules
        if "report_delay" in spec:
            delay = _seconds("report_delay", spec["report_delay"])
        if "latency" in spec:
            latency = _seconds("latency", spec["latency"])
        jitter = self.latency_jitter
        if "latency_jitter" in spec:
            jitter = _seconds("latency_jitter", spec["latency_jitter"])
        ack_timeout, hold_limit, offset = self.ack_timeout, self.hold_limit, self.sc_utc_offset
        if "sc_utc_offset" in spec:
            offset = spec["sc_utc_offset"]
            if (
                isinstance(offset, bool)
                or not isinstance(offset, int)
                or offset % 15
                or abs(offset) > 14 * 60
            ):
                raise NetworkError("sc_utc_offset: minutes, a multiple of 15 within +-840")
        if "ack_timeout" in spec:
            ack_timeout = _seconds("ack_timeout", spec["ack_timeout"])
        if "hold_limit" in spec:
            raw_limit = spec["hold_limit"]
            hold_limit = None if raw_limit is None else _seconds("hold_limit", raw_limit)
        if "report_outcome" in spec:
            default = make_rule("*", str(spec["report_outcome"]))
        if "rules" in spec:
            raw = spec["rules"]
            if not isinstance(raw, list):
                raise NetworkError("rules: expected a list of {pattern, outcome, status?, delay?}")
            rules = []
            for item in raw:
                if not isinstance(item, dict) or not isinstance(item.get("pattern"), str):
                    raise NetworkError(f"rule needs a string 'pattern': {item!r}")
                status = item.get("status")
                if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
                    raise NetworkError(f"rule status must be an integer: {item!r}")
                rule_delay = item.get("delay")
                rules.append(
                    make_rule(
                        item["pattern"],
                        str(item.get("outcome", "delivered")),
                        status,
                        None if rule_delay is None else _seconds("delay", rule_delay),
                    )
                )
        self.report_delay, self.default, self.latency, self.rules = delay, default, latency, rules
        self.ack_timeout, self.hold_limit, self.sc_utc_offset = ack_timeout, hold_limit, offset
        self.latency_jitter = jitter

    def describe(self) -> dict[str, object]:
        return {
            "report_delay": self.report_delay,
            "report_outcome": self.default.outcome,
            "latency": self.latency,
            "latency_jitter": self.latency_jitter,
            "ack_timeout": self.ack_timeout,
            "hold_limit": self.hold_limit,
            "sc_utc_offset": self.sc_utc_offset,
            "rules": [r.describe() for r in self.rules],
            "pending": len(self._pending),
            "submitted": len(self.submitted),
        }

    def submitted_since(self, since: int) -> list[Submitted]:
        """The records with an id above `since`: ids only grow along the list (it is appended
        to, cleared or trimmed at the front), so a binary search finds the first."""
        start = bisect.bisect_right(self.submitted, since, key=lambda s: s.id)
        return self.submitted[start:]

    def seed_jitter(self, seed: int) -> None:
        self._jitter = random.Random(seed)

    def submit_latency(self, override: float | None) -> float:
        """Seconds this submit takes: a modem's latency fault, else the network's with jitter."""
        if override is not None:
            return override
        jitter = self._jitter.uniform(-self.latency_jitter, self.latency_jitter)
        return max(0.0, self.latency + jitter) if self.latency_jitter else self.latency

    def _sc(self, moment: datetime) -> datetime:
        if self._sc_tz_offset != self.sc_utc_offset:  # made again only when the offset changes
            self._sc_tz = timezone(timedelta(minutes=self.sc_utc_offset))
            self._sc_tz_offset = self.sc_utc_offset
        return moment.astimezone(self._sc_tz).replace(microsecond=0)

    def lookup(self, number: str) -> tuple[VirtualModem, int] | None:
        return self._numbers.get(number)

    def rule_for(self, destination: str) -> Rule:
        for rule in self.rules:
            if fnmatch.fnmatchcase(destination, rule.pattern):
                return rule
        return self.default

    # ---- mobile-originated --------------------------------------------------------------------

    def accept_submit(
        self,
        modem: VirtualModem,
        slot: int,
        submit: pdu.Submit,
        reference: int,
        *,
        mode: str,
        raw_pdu: bytes,
    ) -> Submitted:
        """Record one part at the moment of the +CMGS answer and route it."""
        sender = modem.sims[slot].sim
        concat = submit.concat
        record = Submitted(
            id=next(self._ids),
            modem=modem.id,
            slot=slot,
            sender=sender.number,
            destination=submit.destination,
            text=submit.text,
            coding=submit.coding.value,
            part=concat.seq if concat else 1,
            parts=concat.total if concat else 1,
            concat_reference=concat.reference if concat else None,
            reference=reference,
            status_report=submit.status_report,
            mode=mode,
            pdu=raw_pdu.hex().upper(),
            monotonic=time.monotonic(),
            time=datetime.now(UTC),
        )
        self.submitted.append(record)
        if len(self.submitted) > MAX_SUBMITTED:
            # a long demo run must not grow without bound; ids keep counting for ?since=
            del self.submitted[: len(self.submitted) - MAX_SUBMITTED]
        loop = asyncio.get_running_loop()
        loop.call_soon(self._route, record, submit, sender.serving.smsc)
        return record

    def _route(self, record: Submitted, submit: pdu.Submit, smsc: str) -> None:
        rule = self.rule_for(record.destination)
        target = self.lookup(record.destination)
        if target is not None and rule.outcome == "delivered":
            sc_time = self._sc(record.time)
            try:
                deliver = pdu.encode_deliver(
                    record.sender,
                    submit.text,
                    sc_timestamp=sc_time,
                    smsc=smsc,
                    coding=submit.coding,
                    concat=submit.concat,
                    ref16=_has_ref16(submit.user_data_header),
                )
            except (pdu.PduError, UnicodeError) as exc:
                log.warning("cannot re-encode part %d for delivery: %s", record.id, exc)
                return
            sms = IncomingSms(
                pdu=deliver,
                tpdu_length=len(deliver) - 1 - deliver[0],
                sender=record.sender,
                text=submit.text,
                sc_timestamp=sc_time,
            )

            def delivered(rec: Submitted = record, st: int | None = rule.status) -> None:
                rec.delivered = True
                if rec.status_report and st is not None:
                    self._schedule_report(rec, st, rule.delay)

            self._offer(_Pending(record.destination, "sms", sms, delivered, record=record))
            return
        # outside the emulated set, or a rule that fails it: no delivery, only the report
        record.delivered = rule.outcome == "delivered"
        if record.status_report and rule.status is not None:
            self._schedule_report(record, rule.status, rule.delay)

    def _schedule_report(self, record: Submitted, status: int, delay: float | None) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(
            self.report_delay if delay is None else delay, self._send_report, record, status
        )

    def _send_report(self, record: Submitted, status: int) -> None:
        modem = self.modems[record.modem]
        sender = modem.sims[record.slot].sim
        now = self._sc(datetime.now(UTC))
        sc_time = self._sc(record.time)
        raw = pdu.encode_status_report(
            record.reference,
            record.destination,
            status,
            sc_timestamp=sc_time,
            discharge_time=now,
            smsc=sender.serving.smsc,
        )
        record.report_status = status
        report = IncomingReport(
            pdu=raw,
            tpdu_length=len(raw) - 1 - raw[0],
            reference=record.reference,
            recipient=record.destination,
            status=status,
            sc_timestamp=sc_time,
            discharge_time=now,
        )
        self._offer(_Pending(sender.number, "report", report))

    # ---- mobile-terminated --------------------------------------------------------------------

    def inject(self, sender: str, to: str, text: str) -> dict[str, object]:
        """An SMS from outside the emulated set (POST /sms); long texts arrive as several parts."""
        if self.lookup(to) is None:
            raise NetworkError(f"{to!r} is not an emulated number")
        if not isinstance(text, str) or not text:
            raise NetworkError("text must be a non-empty string")
        try:
            coding, parts = pdu.split_text(text)
        except pdu.PduError as exc:
            raise NetworkError(str(exc)) from None
        ref = next(self._inject_ref) % 256
        now = self._sc(datetime.now(UTC))
        modem, slot = self._numbers[to]
        smsc = modem.sims[slot].sim.home.smsc
        pdus: list[str] = []
        for seq, part in enumerate(parts, 1):
            concat = pdu.Concat(ref, len(parts), seq) if len(parts) > 1 else None
            try:
                raw = pdu.encode_deliver(
                    sender, part, sc_timestamp=now, smsc=smsc, coding=coding, concat=concat
                )
            except pdu.PduError as exc:
                raise NetworkError(f"cannot encode: {exc}") from None
            pdus.append(raw.hex().upper())
            sms = IncomingSms(raw, len(raw) - 1 - raw[0], sender, part, now)
            self._offer(_Pending(to, "sms", sms))
        return {"to": to, "from": sender, "parts": len(parts), "coding": coding.value, "pdus": pdus}

    def redeliver(self, number: str, kind: str, payload: IncomingSms | IncomingReport) -> None:
        """A direct delivery that was not acknowledged goes out again (a duplicate)."""
        self._offer(_Pending(number, kind, payload))

    def _offer(self, item: _Pending) -> None:
        # keep order per number: never overtake something already held for the same SIM
        if any(p.number == item.number for p in self._pending) or not self._try(item):
            self._pending.append(item)

    def _try(self, item: _Pending) -> bool:
        target = self.lookup(item.number)
        if target is None:
            return True  # nobody to hand it to: the number left the emulator
        modem, slot = target
        if item.kind == "sms":
            assert isinstance(item.payload, IncomingSms)
            ok = modem.deliver_sms(slot, item.payload)
        else:
            assert isinstance(item.payload, IncomingReport)
            ok = modem.deliver_report(slot, item.payload)
        if ok and item.on_done is not None:
            item.on_done()
        return ok

    def flush(self) -> None:
        blocked: set[str] = set()
        keep: deque[_Pending] = deque()
        now = time.monotonic()
        while self._pending:
            item = self._pending.popleft()
            if self.hold_limit is not None and now - item.created > self.hold_limit:
                self._expire(item)
                continue
            if item.number in blocked or not self._try(item):
                blocked.add(item.number)
                keep.append(item)
        self._pending = keep

    def _expire(self, item: _Pending) -> None:
        """Held past the hold limit: dropped, and its sender told "validity period expired"."""
        log.info(
            "SMSC gives up on a %s for %s after %.1f s", item.kind, item.number, self.hold_limit
        )
        record = item.record
        if record is not None and record.status_report:
            self._schedule_report(record, OUTCOMES["expired"], None)

    def pending_count(self) -> int:
        return len(self._pending)

    async def _retry_loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # coincides with the event being set, and stop() would then wait forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._kick.wait()
            self._kick.clear()
            if self._pending:
                try:
                    self.flush()
                except Exception:
                    log.exception("SMSC retry failed")


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise NetworkError(f"{name}: expected seconds >= 0, got {value!r}")
    return float(value)


def _has_ref16(udh: bytes) -> bool:
    """Whether the UDH (with its length octet) carries the 16-bit concat element (IEI 0x08)."""
    i = 1
    while i + 1 < len(udh):
        iei, length = udh[i], udh[i + 1]
        if iei == 0x08:
            return True
        i += 2 + length
    return False
