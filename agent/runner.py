"""Run the agent: one DeviceRunner per configured modem, all sharing one journal.

A DeviceRunner wires a Modem, the sync loops and the dispatcher(s) of one device, and turns
modem events into journal rows:

- IncomingSms: journaled first (a failed journal write raises, so the modem keeps the SMS on
  the SIM); then, if the server is reachable, forwarded at once and the handler returns only
  when the server has it, so the modem deletes it after the "forward, then
  CMGD". If the server is away (or slower than `incoming_forward_timeout`), the handler returns
  after the journal write and the SMS is deleted from the SIM: the fsynced journal is then the
  durable copy and the sync loop forwards it later. Keeping it on the SIM instead would fill
  the SIM's few storage slots during a long outage, and a full SIM makes the network stop
  delivering new SMS; the journal has no such limit.
- DeliveryReport: matched to a sent part (agent/reports.py), or held in the journal before the
  handler returns (so before the modem acks or deletes it) and matched later.
- StateChange: a device-status event, and a nudge for the dispatchers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

from simhive.agent.backoff import Backoff
from simhive.agent.balance import BalanceChecker
from simhive.agent.claim import Claimer
from simhive.agent.client import AgentClient
from simhive.agent.config import AgentConfig, DeviceConfig
from simhive.agent.dispatcher import Dispatcher, DispatchPolicy
from simhive.agent.eventwait import Flag, wait_event
from simhive.agent.handback import HandBack
from simhive.agent.http import HttpClient
from simhive.agent.journal import Journal, iso
from simhive.agent.modem.base import (
    DeliveryReport,
    IncomingSms,
    Modem,
    ModemEvent,
    ModemIdentity,
    ModemState,
    SimInfo,
    StateChange,
)
from simhive.agent.pacing import DAY, Pacer, SimLimits
from simhive.agent.reports import ReportMatcher
from simhive.agent.sha256 import sha256
from simhive.agent.simview import SimReadiness
from simhive.agent.sync import Sync

log = logging.getLogger(__name__)

ModemFactory = Callable[[DeviceConfig], Modem]
STOP_SEND_TIMEOUT = 150.0  # a part in flight may wait >= 60 s for +CMGS; give it all its parts
JOURNAL_RETENTION_SECONDS = 30 * DAY
# A held report is retried this soon after it came, then every HELD_RECHECK_SECONDS until the
# matcher matches or drops it (HOLD_SECONDS); a send being journaled also retries at once.
REPORT_RETRY_DELAYS = (0.5, 2.0, 5.0, 11.0, 30.0)
HELD_RECHECK_SECONDS = 60.0
# The cyclic garbage collector's first threshold for the agent process (Python's default 700).
# Nearly all of the agent's garbage is freed by reference counting; at 64 busy modems the
# default still ran about 560 collections per 4,000 SMS, 0.84 s of CPU (about 11 % of the
# agent's), against 7 collections and 0.05 s at 10,000 (docs/benchmarks.md). The cost is at
# most this many uncollected objects more: well under 1 MiB.
GC_GEN0_THRESHOLD = 10_000


def tune_gc() -> None:
    """For the `simhive-agent run` process only: tests that run the agent in process keep theirs."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class DeviceRunner:
    def __init__(
        self,
        cfg: DeviceConfig,
        agent: AgentConfig,
        journal: Journal,
        modem: Modem,
        session: HttpClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.agent = agent
        self.journal = journal
        self.modem = modem
        self.name = cfg.name
        self._clock = clock
        self.client = AgentClient(
            cfg.server, cfg.token, session, timeout=agent.request_timeout_seconds
        )
        # Claims go through the sync loops' commit, which lets pending reports ride along
        # (self.sync is made below; a claim comes only once the loops run).
        self.claimer = Claimer(cfg.name, lambda lease_id, ids: self.sync.commit(lease_id, ids))
        self.pacers = {s: Pacer(SimLimits(), clock=clock) for s in cfg.slots}
        self.matcher = ReportMatcher(
            journal, cfg.name, window=agent.report_window_seconds, slots=cfg.slots, clock=clock
        )
        policy = DispatchPolicy(
            max_attempts=agent.max_attempts,
            retry_backoff_seconds=agent.retry_backoff_seconds,
            sim_failure_threshold=agent.sim_failure_threshold,
            sim_pause_seconds=agent.sim_pause_seconds,
        )
        # A single-standby dual-SIM modem is one send channel for both slots (batching per
        # SIM); otherwise each slot has its own radio and its own dispatcher.
        groups = [cfg.slots] if cfg.single_standby else [[s] for s in cfg.slots]
        self.dispatchers = [
            Dispatcher(
                device=cfg.name,
                modem=modem,
                journal=journal,
                pacers={s: self.pacers[s] for s in group},
                policy=policy,
                on_status=self._status_event,
                on_done=self._after_send,
                on_switch=self._sim_switched,
                claim=self.claimer.claim,
                clock=clock,
            )
            for group in groups
        ]
        for d in self.dispatchers:
            d.visit_idle_seconds = agent.sim_visit_seconds
        self.matcher.send_in_flight = self._send_in_flight
        self.readiness = SimReadiness(
            device=cfg.name, modem=modem, journal=journal, dispatchers=self.dispatchers,
            clock=clock,
        )  # fmt: skip
        self.sync = Sync(
            device=cfg.name,
            client=self.client,
            journal=journal,
            slots=cfg.slots,
            hello_payload=self._hello_payload,
            sims_payload=self._sims_payload,
            on_settings=self._apply_settings,
            on_work=self._committed,
            sims_view=self.readiness.view,
            claims=True,
            claims_coming=lambda: any(d.claiming for d in self.dispatchers),
            status_interval=agent.status_interval_seconds,
            clock=clock,
        )
        self.handback = HandBack(
            device=cfg.name, client=self.client, journal=journal,
            readiness=self.readiness.readiness, clock=clock,
        )  # fmt: skip
        self.balance = BalanceChecker(cfg, modem, self.sync.wake_status, clock=clock)
        self._tasks: list[asyncio.Task[None]] = []
        self._modem_started = Flag()
        self._hello_identity: ModemIdentity | None = None
        self._helpers: set[asyncio.Task[None]] = set()
        self.restart_delay = 5.0
        self._report_held = Flag()
        self._stopping = False

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        for slot, pacer in self.pacers.items():
            pacer.seed(await self.journal.sent_times(self.name, slot, self._clock() - DAY))
        loops: list[tuple[Callable[[], Coroutine[Any, Any, None]], str]] = [
            (self._start_modem, "modem"),
            (self.sync.pull_loop, "pull"),
            (self.sync.report_loop, "report"),
            (self.sync.incoming_loop, "incoming"),
            (self.sync.status_loop, "status"),
            (self._delivery_loop, "delivery"),
            (self.handback.run, "handback"),
            (self.balance.run, "balance"),
        ] + [(d.run, f"dispatch{i}") for i, d in enumerate(self.dispatchers)]
        for make, what in loops:
            self._tasks.append(
                asyncio.create_task(self._supervise(make, what), name=f"{self.name}:{what}")
            )
        # Reports left from a previous run go out as soon as the server answers.
        self.sync.wake_reports()
        self.sync.wake_incoming()

    async def stop(self) -> None:
        """Finish the message in flight, keep the rest committed, say goodbye to the modem."""
        self._stopping = True
        for d in self.dispatchers:
            d.stop()
        dispatch_tasks = [t for t in self._tasks if ":dispatch" in t.get_name()]
        if dispatch_tasks:
            _, late = await asyncio.wait(dispatch_tasks, timeout=STOP_SEND_TIMEOUT)
            for t in late:
                t.cancel()
        self.sync.stop()
        self.handback.stop()
        self.balance.stop()
        others = [t for t in self._tasks if t not in dispatch_tasks]
        # The long poll and a commit waiting for the server are abandoned; a journaled open
        # lease is committed again at the next start.
        for t in others:
            if t.get_name().endswith((":pull", ":modem", ":delivery")):
                t.cancel()
        await asyncio.wait(others, timeout=10.0)
        for t in others:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._helpers, return_exceptions=True)
        # Nothing is being sent any more: pool messages not started go back to their pool
        # now rather than wait for this agent's return (pinned ones stay committed).
        await self.handback.final(3.0)
        await self.sync.final_flush(3.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.modem.stop(), 15.0)

    async def _supervise(self, make: Callable[[], Coroutine[Any, Any, None]], what: str) -> None:
        """Run one loop; if it dies of a bug or a journal error, log it and start it again.

        A dead loop would otherwise stop sending or reporting for this device without a word.
        Restarting is safe: every loop resumes from the journal (a message whose send finished
        but could not be journaled stays `dispatching` and is never resent).
        """
        while not self._stopping:
            try:
                await make()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "device %s: %s loop failed; restarting it in %.0f s",
                    self.name, what, self.restart_delay,
                )  # fmt: skip
                await asyncio.sleep(self.restart_delay)

    async def _start_modem(self) -> None:
        backoff = Backoff(base=2.0, cap=60.0)
        while not self._stopping:
            try:
                await self.modem.start(self.on_event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                log.error("device %s: modem start failed (%s: %s); retrying in %.0f s",
                          self.name, type(exc).__name__, exc, delay)  # fmt: skip
                if backoff.failures == 1:  # once per outage, not once per retry
                    await self._status_event(
                        {
                            "at": iso(self._clock()),
                            "kind": "modem",
                            "state": "disconnected",
                            "reason": str(exc)[:200],
                        }
                    )
                await asyncio.sleep(delay)
                continue
            if self.modem.state is ModemState.DISCONNECTED:
                # start() returns for a missing or unopenable port (the backend keeps trying
                # to reopen it); say why, with its fix, instead of "modem started".
                reason = getattr(self.modem, "state_reason", "") or "port not open"
                log.error("device %s: modem not available: %s; retrying in the background",
                          self.name, reason)  # fmt: skip
            else:
                ident = self.modem.identity
                what = " ".join(x for x in (ident.manufacturer, ident.model) if x)
                log.info("device %s: modem started (%s)", self.name, what or "identity unknown")
            self._modem_started.set()
            self._sims_changed()
            self._hello_if_identity_changed()
            self.sync.wake_status()
            self._wake_dispatchers()
            return

    # -- modem events -----------------------------------------------------------------------

    async def on_event(self, event: ModemEvent) -> None:
        if isinstance(event, IncomingSms):
            await self._on_incoming(event)
        elif isinstance(event, DeliveryReport):
            result = await self.matcher.handle(event)
            if result is not None and result.outcome in ("delivered", "not_delivered"):
                self.sync.wake_reports()
            elif result is None:
                self._report_held.set()
        elif isinstance(event, StateChange):
            down = event.state is ModemState.DISCONNECTED and event.reason != "stopped"
            log.log(logging.WARNING if down else logging.INFO, "device %s: modem %s: %s",
                    self.name, event.state.value, event.reason or "-")  # fmt: skip
            self.readiness.note_state(event.reason)
            await self._status_event(
                {
                    "at": iso(self._clock()),
                    "kind": "modem",
                    "state": event.state.value,
                    "reason": event.reason,
                }
            )
            if event.state is ModemState.READY:
                self._hello_if_identity_changed()  # e.g. a different modem behind a replugged port
            self._wake_dispatchers()

    async def _on_incoming(self, sms: IncomingSms) -> None:
        key = sms.key or _fallback_key(self.name, sms)
        if key != sms.key:
            sms = IncomingSms(
                slot=sms.slot, sender=sms.sender, text=sms.text, sent_at=sms.sent_at,
                received_at=sms.received_at, parts=sms.parts, incomplete=sms.incomplete,
                key=key, storage=sms.storage,
            )  # fmt: skip
        new = await self.journal.add_incoming(self.name, sms)
        if not new and await self.journal.is_forwarded(self.name, key):
            return  # a re-read of an SMS the server already has: let the modem delete it
        timeout = self.agent.incoming_forward_timeout
        # Try at once unless the server is known to be away: an SMS swept at start-up, before
        # the first hello, should still be on the server before it leaves the SIM.
        if not self.sync.server_away and timeout > 0:
            await self.sync.forward_incoming_now(key, timeout)
        else:
            self.sync.wake_incoming()

    # -- glue -------------------------------------------------------------------------------

    def _hello_if_identity_changed(self) -> None:
        if self.modem.identity != self._hello_identity:
            self.sync.request_hello()

    async def _status_event(self, event: dict[str, Any]) -> None:
        event = {"event_id": f"{event['kind']}:{time.time_ns()}", **event}
        await self.journal.add_event(self.name, "status", event)
        self.sync.wake_status()
        self._sims_changed()  # a modem state change, a SIM paused or resumed

    def _sim_switched(self, slot: int) -> None:
        # A single-standby modem read the SIM it made active (ICCID, number, carrier): send
        # it now, not at the next periodic status, so getalldevices lists it within seconds.
        self.sync.wake_status()
        self._sims_changed()

    def _sims_changed(self) -> None:
        """What a SIM can take may have changed: the pull's view and the hand-back look again."""
        self.sync.sims_changed()
        self.handback.wake()

    def _committed(self) -> None:
        self._wake_dispatchers()
        self.handback.wake(committed=True)  # pool work may have come for a SIM now down

    async def _send_in_flight(self, slot: int) -> None:
        for d in self.dispatchers:
            if slot in d.slots:
                await d.outcome_queued()

    def _after_send(self) -> None:
        self.sync.work_done()
        self.sync.wake_reports()
        if self.matcher.holding:  # not a task per send when no report waits for its part
            self._spawn(self._after_send_async())

    async def _after_send_async(self) -> None:
        if await self.matcher.retry_unmatched():
            self.sync.wake_reports()

    async def _delivery_loop(self) -> None:
        """Held reports (also those a previous run left), and sent messages whose reports are
        overdue (`delivery_report_timeout_seconds`): nothing stays at "sent" forever."""
        timeout = self.agent.delivery_report_timeout_seconds
        # Overdue messages are looked for this often: a small share of the timeout.
        expiry_every = max(1.0, min(600.0, timeout / 10))
        next_expiry = 0.0
        delays: list[float] = []
        while not self._stopping:
            if await self.matcher.retry_unmatched():
                self.sync.wake_reports()
            now = self._clock()
            if timeout > 0 and now >= next_expiry:
                await self._expire_unreported(now, timeout)
                next_expiry = now + expiry_every
            if self._report_held.is_set():
                self._report_held.clear()
                delays = list(REPORT_RETRY_DELAYS)
            wait = delays.pop(0) if delays else HELD_RECHECK_SECONDS
            if not self.matcher.holding:
                wait = 3600.0
            if timeout > 0:
                wait = min(wait, max(0.0, next_expiry - now))
            await wait_event(self._report_held, wait)

    async def _expire_unreported(self, now: float, horizon: float) -> None:
        span = f"{horizon / 3600:g} h" if horizon >= 3600 else f"{horizon:g} s"
        why = f"sent, but no final delivery report within {span}; delivery unknown"
        ids = await self.journal.expire_unreported(self.name, now - horizon, now, why)
        if ids:
            log.warning(
                "device %s: %d sent message(s) got no final status report within %.0f s:"
                " reported outcome-unknown (%s)",
                self.name, len(ids), horizon, ", ".join(map(str, ids[:20])),
            )  # fmt: skip
            self.sync.wake_reports()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    def _wake_dispatchers(self) -> None:
        for d in self.dispatchers:
            d.wake()

    def _apply_settings(self, settings: dict[str, Any]) -> None:
        for slot, pacer in self.pacers.items():
            pacer.update(SimLimits.from_settings(settings, slot))
        self._wake_dispatchers()

    async def _sims(self) -> list[SimInfo] | None:
        if self.modem.state in (ModemState.DISCONNECTED, ModemState.CONNECTING):
            return None
        try:
            sims = await asyncio.wait_for(self.modem.sim_info(), 30.0)
        except Exception as exc:
            log.warning("device %s: cannot read SIM info: %s", self.name, exc)
            return None
        self.readiness.note_sims(sims)
        return sims

    async def _sims_payload(self) -> list[dict[str, Any]] | None:
        sims = await self._sims()
        return None if sims is None else [self._sim_dict(s) for s in sims]

    def _sim_dict(self, s: SimInfo) -> dict[str, Any]:
        return {
            "slot": s.slot, "present": s.present, "active": s.active, "iccid": s.iccid,
            "imsi": s.imsi, "number": s.number or self.cfg.number_for(s.slot),
            "operator": s.operator, "operator_code": s.operator_code, "carrier": s.carrier,
            "country_iso": s.country_iso, "registered": s.registered, "roaming": s.roaming,
            "signal_dbm": s.signal_dbm, "balance": self.balance.for_slot(s.slot),
        }  # fmt: skip

    async def _hello_payload(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        ident = self.modem.identity
        self._hello_identity = ident
        device = {
            "title": self.cfg.name,
            "manufacturer": ident.manufacturer,
            "model": ident.model,
            "firmware": ident.firmware,
            "imei": ident.imei,
            "serialnumber": ident.serial
            or f"{socket.gethostname()}/{os.path.basename(self.cfg.ports[0])}",
        }
        return device, (await self._sims_payload()) or []


def _fallback_key(device: str, sms: IncomingSms) -> str:
    # The modem layer should give a key; if it does not, derive one that is stable across
    # re-reads of the same stored message (sender, SC time, text), never from the read time.
    stamp = sms.sent_at.isoformat() if sms.sent_at else ""
    digest = sha256(f"{sms.slot}|{sms.sender}|{stamp}|{sms.text}".encode()).hexdigest()
    return f"{device}:{digest[:32]}"


class AgentRunner:
    """All devices of one config file; stops gracefully on SIGTERM / SIGINT."""

    def __init__(self, cfg: AgentConfig, modem_factory: ModemFactory) -> None:
        self.cfg = cfg
        self.modem_factory = modem_factory
        self.journal = Journal(cfg.journal)
        self.devices: list[DeviceRunner] = []
        self._stop = Flag()

    def request_stop(self) -> None:
        self._stop.set()

    async def _housekeeping(self) -> None:
        """Once a day: forget finished history older than the retention period."""
        while True:
            try:
                n = await self.journal.prune(time.time() - JOURNAL_RETENTION_SECONDS)
                if n:
                    log.info("journal: forgot %d finished row(s)", n)
            except Exception as exc:  # disk trouble shows up elsewhere too; keep running
                log.warning("journal housekeeping failed: %s", exc)
            await asyncio.sleep(DAY)

    async def run(self) -> None:
        await self.journal.open()
        # One connection pool for all devices: they talk to the same server (keyed by origin).
        session = HttpClient()
        try:
            unknown = await self.journal.recover(time.time())
            for device, msg_id in unknown:
                log.warning("device %s: message %d was being sent when the agent stopped; "
                            "reporting outcome unknown, not resending", device, msg_id)  # fmt: skip
            for dcfg in self.cfg.devices:
                modem = self.modem_factory(dcfg)
                self.devices.append(DeviceRunner(dcfg, self.cfg, self.journal, modem, session))
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self.request_stop)
            for d in self.devices:
                await d.start()
            log.info("agent running with %d device(s)", len(self.devices))
            housekeeping = asyncio.create_task(self._housekeeping())
            await self._stop.wait()
            housekeeping.cancel()
            log.info("stopping: finishing messages in flight")
            await asyncio.gather(*(d.stop() for d in self.devices), return_exceptions=True)
        finally:
            await session.close()
            await self.journal.close()
            log.info("agent stopped")
