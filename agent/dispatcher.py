"""The dispatcher: takes committed messages from the journal and hands them to the modem.

One dispatcher serves one *send channel*: a SIM with its own radio (one per slot), or both slots
of a single-standby dual-SIM modem (SIM800C-DS, QDSIM boards), where only one SIM is registered
at a time and a switch costs seconds to tens of seconds of re-registration. There it batches:
it keeps draining the active slot's due messages and switches only when that slot has nothing
due (or is capped for a long time), or when the other slot has urgent work and it has none.
Such a modem can read only its active SIM, so each time it connects (start, replug, re-init)
the dispatcher visits every other SIM once, before any non-urgent send, to read its identity,
then returns to the SIM that was active; an idle modem also visits its other SIM regularly.

Never lose, never double-send (docs/reliability.md):
- the journal row goes to ``dispatching`` (synced) before AT+CMGS; a crash leaves it there and
  the next start reports outcome-unknown instead of resending;
- RETRY errors are retried a bounded number of times with back-off, PERMANENT ones fail at once,
  UNKNOWN ones (the link dropped mid-submit) become outcome-unknown, never a silent resend;
- a retryable error after some parts already went out is final: resending would duplicate them;
- a SIM that keeps failing on messages that are not to blame is paused and reported; its
  messages stay committed in the journal for when it comes back;
- a pool message is still only leased when it is picked: it is claimed (committed, agent/
  claim.py) first and sent only when the server says it is this device's; the claim's answer
  and the `dispatching` mark are one journal write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from simhive.agent.eventwait import Flag, wait_event
from simhive.agent.journal import Journal, OutMessage, iso
from simhive.agent.modem.base import Modem, ModemState, SendError, SendOutcome
from simhive.agent.pacing import Pacer

log = logging.getLogger(__name__)

# Failures that say something about the number, not the SIM: they must not count
# towards pausing the SIM, or one list of bad numbers would take a healthy SIM out of service.
NUMBER_CMS = frozenset({1, 22, 28, 30, 195, 196, 304})
# Operator throttling looks like these after fast sends: slow the SIM down, do not hammer it.
THROTTLE_CMS = frozenset({41, 42, 47, 192, 331, 332})
# On a single-standby modem, stay on the active SIM unless its pacing makes us wait this long.
SWITCH_AFTER_SECONDS = 60.0
# What a SIM switch (a re-registration) is taken to cost until one has been measured: real
# single-standby modules need a few seconds to tens of seconds. While the active SIM waits out
# its pacing for longer than a switch there and back, the radio serves the other SIM (whose
# due work can go now) instead of idling: a paced SIM must not hold back its neighbour.
SWITCH_SECONDS_GUESS = 5.0
MAX_PAUSE_SECONDS = 6 * 3600.0
IDLE_RECHECK_SECONDS = 30.0

# An idle single-standby modem visits its other SIM this often: SMS and status reports for the
# inactive SIM are held by the network until that SIM is registered again.
VISIT_IDLE_SECONDS = 60.0
# After a connect, the other SIM is visited at once (its ICCID, number and carrier are unknown
# until it is active) and, when nothing is waiting, kept active this long (at most the visit
# interval) so that what the network held for it can come in; then the first SIM is back.
SURVEY_DWELL_SECONDS = 10.0

# No answer to a claim (the server is away): the SIM's leased pool messages are claimed again
# after this long; pinned work goes on meanwhile.
CLAIM_RETRY_SECONDS = 2.0
# A claim covers the SIM's pool messages it will start within this long (at least the one it
# starts now): what a killed agent may hold committed per SIM beyond the message on its radio.
CLAIM_AHEAD_SECONDS = 0.1
MAX_CLAIM_BATCH = 16

StatusCallback = Callable[[dict[str, Any]], Awaitable[None]]
SwitchCallback = Callable[[int], None]
# [(lease id, message id), ...] -> per claim, in order: True: committed, send it; False: not
# ours; None: no answer. Claims made in one call go to the server together.
ClaimCallback = Callable[[Sequence[tuple[str, int]]], Awaitable[list[bool | None]]]


@runtime_checkable
class SlotActivation(Protocol):
    """Optional backend capability: make a slot the active SIM without sending anything."""

    async def activate_slot(self, slot: int) -> None: ...


@dataclass(frozen=True)
class DispatchPolicy:
    max_attempts: int = 3
    retry_backoff_seconds: float = 30.0
    sim_failure_threshold: int = 5
    sim_pause_seconds: float = 600.0


@dataclass
class SlotState:
    pacer: Pacer
    failures: int = 0  # consecutive failures that may be the SIM's fault
    pauses: int = 0
    paused_until: float = 0.0
    last_error: str = ""
    sent: int = 0
    failed: int = 0
    # How long a submit takes here (moving average): tells how many sends can start soon.
    send_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def error_code(err: SendError) -> str:
    if err.cms is not None:
        return f"CMS {err.cms}"
    if err.cme is not None:
        return f"CME {err.cme}"
    return ""


class Dispatcher:
    def __init__(
        self,
        *,
        device: str,
        modem: Modem,
        journal: Journal,
        pacers: dict[int, Pacer],
        policy: DispatchPolicy | None = None,
        on_status: StatusCallback | None = None,
        on_done: Callable[[], None] | None = None,
        on_switch: SwitchCallback | None = None,
        claim: ClaimCallback | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not pacers:
            raise ValueError("a dispatcher needs at least one slot")
        self.device = device
        self.modem = modem
        self.journal = journal
        self.policy = policy or DispatchPolicy()
        self.slots: Sequence[int] = sorted(pacers)
        self.state = {s: SlotState(pacer=p) for s, p in pacers.items()}
        self._on_status = on_status
        self._on_done = on_done
        self._on_switch = on_switch
        # Without a claim callback only committed messages are sent (leased pool messages wait
        # for an owner that can claim them).
        self._claim = claim
        self.claims_lost = 0  # claims the server rejected (counter for tests and logs)
        # It claimed a pool message and has not found itself without work since: its next
        # claim comes as soon as its send ends (the sync loops leave reports to it).
        self.claiming = False
        self._clock = clock
        self._rand = rand
        self._wake = Flag()
        self._stopping = False
        self.active_slot: int | None = None
        self.in_flight: int | None = None
        # Resolved when the send in flight has its outcome queued for the journal (see
        # outcome_queued); None while nothing is being sent.
        self._outcome: asyncio.Future[None] | None = None
        self.switches = 0
        self.visits = 0
        self.switch_seconds = SWITCH_SECONDS_GUESS  # moving average of measured switches
        self._active_since = clock()
        self.visit_idle_seconds = VISIT_IDLE_SECONDS
        self.survey_dwell_seconds = SURVEY_DWELL_SECONDS
        # The connect visit ("survey"): SIMs still to visit once since the modem came up, the
        # SIM to return to afterwards (None: no survey under way), and when to return.
        self._modem_up = False
        self._epoch: int | None = None  # the modem's connection_epoch at the last connect seen
        self._survey: list[int] = []
        self._survey_home: int | None = None
        self._survey_until = 0.0
        # What _choose saw due (slot -> urgent), sendable now or held back by pacing.
        self._due: dict[int, bool] = {}
        # The last "sent" outcome, queued for the journal's next commit (see _dispatch).
        self._journaling: asyncio.Future[None] | None = None

    def wake(self) -> None:
        """New work, a modem state change, or new settings: look again now."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def modem_up(self) -> bool:
        """The last look found the modem connected (its SIMs were surveyed on that edge)."""
        return self._modem_up

    @property
    def active_sim(self) -> int:
        """The SIM this channel has (or last had) active; its only SIM on a one-SIM channel."""
        return self._current_slot()

    async def outcome_queued(self) -> None:
        """Return once the send in flight now, if any, has its outcome queued for the journal
        (its "sent" write is then in the queue that Journal.settled waits for)."""
        if self._outcome is not None:
            await asyncio.shield(self._outcome)

    def stop(self) -> None:
        """Finish the message in flight (all its parts), then return from run()."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            if self._journaling is not None:  # the last "sent" must be on disk before we go
                with contextlib.suppress(Exception):
                    await self._journaling

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            if self.modem.state in (ModemState.DISCONNECTED, ModemState.CONNECTING):
                # Sending now would only burn attempts; the modem's supervisor is reconnecting.
                self._modem_up = False
                await self._idle(5.0)
                continue
            if self._connected():
                self._plan_survey()
            msg, wait = await self._choose()
            if msg is None:
                self.claiming = False
            if (msg is None or not msg.urgent) and await self._maybe_survey(idle=msg is None):
                continue
            if msg is None:
                if await self._maybe_visit():
                    continue
                await self._idle(self._visit_wait(wait))
                continue
            if self.stopping:  # stop() may have come while we looked at the journal
                break
            await self._dispatch(msg)

    def _connected(self) -> bool:
        """Is this look the first since the modem (re)connected? (It is up now.)

        A backend that counts its connects (`connection_epoch`, agent/modem/events.py) is
        believed over the state: a disconnect and reconnect that both happened while we were
        inside a send never show as a down state at the top of the loop.
        """
        epoch = getattr(self.modem, "connection_epoch", None)
        epoch = epoch if isinstance(epoch, int) else None
        fresh = not self._modem_up or epoch != self._epoch
        self._modem_up, self._epoch = True, epoch
        return fresh

    async def _idle(self, seconds: float | None) -> None:
        # Capped: a wake-up lost in a race costs at most this long, never a stuck queue.
        limit = IDLE_RECHECK_SECONDS if seconds is None else min(seconds, IDLE_RECHECK_SECONDS)
        await wait_event(self._wake, limit)  # no task per wait (agent/eventwait.py)

    def _can_visit(self) -> bool:
        return len(self.slots) > 1 and isinstance(self.modem, SlotActivation)

    def _modem_slot(self) -> int | None:
        # Optional: a backend that knows its active SIM says so (the AT backend queries it at
        # init); otherwise the dispatcher's own record is all there is.
        slot = getattr(self.modem, "active_slot", None)
        return slot if isinstance(slot, int) and slot in self.slots else None

    def _current_slot(self) -> int:
        slot = self._modem_slot()
        if slot is None:
            slot = self.active_slot if self.active_slot is not None else self.slots[0]
        return slot

    def _plan_survey(self) -> None:
        """The modem came up (start, replug, re-init): visit every other SIM once, then return.

        A single-standby modem reads only its active SIM, so the other one's ICCID, number and
        carrier would otherwise stay unknown until the first idle visit (sim_visit_seconds).
        Once per connect, because each switch costs a re-registration of seconds.
        """
        if not self._can_visit():
            return
        home = self._current_slot()
        self.active_slot = home
        self._active_since = self._clock()
        self._survey = [s for s in self.slots if s != home]
        self._survey_home = home
        self._survey_until = 0.0

    async def _maybe_survey(self, *, idle: bool) -> bool:
        """One step of the connect visit; True when it made a SIM active (look again)."""
        if self._survey_home is None:
            return False
        if self._survey:
            if any(self._due.values()):
                return False  # urgent work first; the visit comes after it
            slot = self._survey.pop(0)
            ok = await self._activate(slot, "connected: reading its SIM info", logging.INFO)
            self._survey_until = self._clock() + (
                min(self.survey_dwell_seconds, self.visit_idle_seconds) if ok else 0.0
            )
            return True
        home = self._survey_home
        # Back only when idle: due work decides where the modem goes (sending there ends the
        # survey), and work due on the visited SIM, even if paced, keeps it there.
        if not idle or self._clock() < self._survey_until or set(self._due) - {home}:
            return False
        self._survey_home = None
        if self._current_slot() == home:
            return False
        return await self._activate(home, "back to the SIM active at connect", logging.INFO)

    async def _maybe_visit(self) -> bool:
        """Idle on a single-standby modem for a while: make the next SIM active for a while."""
        if not self._can_visit() or self._clock() - self._active_since < self.visit_idle_seconds:
            return False
        current = self._current_slot()
        nxt = self.slots[(list(self.slots).index(current) + 1) % len(self.slots)]
        return await self._activate(nxt, "idle, active to receive", logging.DEBUG)

    async def _activate(self, slot: int, why: str, level: int) -> bool:
        assert isinstance(self.modem, SlotActivation)
        started, before = self._clock(), self._current_slot()
        try:
            await self.modem.activate_slot(slot)
            if before != slot:
                self._note_switch(self._clock() - started)
        except Exception as exc:  # a failed idle visit is retried at the next idle turn
            log.warning("device %s: making SIM %d active failed: %s", self.device, slot, exc)
            # The switch may have happened with only the registration failing.
            known = self._modem_slot()
            self.active_slot = known if known is not None else self.active_slot
            return False
        finally:
            self._active_since = self._clock()
            self._switched(slot)
        log.log(level, "device %s: SIM %d active (%s)", self.device, slot, why)
        self.active_slot = slot
        self.visits += 1
        return True

    def _switched(self, slot: int) -> None:
        # The active SIM changed (or may have): its info is fresh, the server should see it.
        if self._on_switch is not None:
            self._on_switch(slot)

    def _visit_wait(self, wait: float | None) -> float | None:
        """How long an idle dispatcher may sleep before the next visit or survey step."""
        if not self._can_visit():
            return wait
        due = self._active_since + self.visit_idle_seconds
        if self._survey_home is not None and not self._survey:
            due = min(due, self._survey_until)
        left = max(0.0, due - self._clock())
        return left if wait is None else min(wait, left)

    async def _choose(self) -> tuple[OutMessage | None, float | None]:
        now = self._clock()
        candidates: dict[int, OutMessage] = {}
        waits: list[float] = []
        for slot in self.slots:
            st = self.state[slot]
            if st.paused_until > now:
                waits.append(st.paused_until - now)
                continue
            if st.paused_until:
                st.paused_until = 0.0
                await self._status(slot, "resumed", "pause over; trying again")
            msg = await self.journal.next_due(self.device, slot, now, claimable=self.claims)
            if msg is not None:
                candidates[slot] = msg
        self._due = {s: m.urgent for s, m in candidates.items()}
        if not candidates:
            nxt = await self.journal.next_wakeup(self.device, self.slots, claimable=self.claims)
            if nxt is not None:
                waits.append(max(0.0, nxt - now))
            return None, (min(waits) if waits else None)
        slot = self._pick_slot(candidates)
        delay = self.state[slot].pacer.delay()
        if delay > 0:
            return None, delay
        return candidates[slot], 0.0

    def _note_switch(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.switch_seconds = 0.7 * self.switch_seconds + 0.3 * seconds

    def _pick_slot(self, candidates: dict[int, OutMessage]) -> int:
        if len(candidates) == 1:
            return next(iter(candidates))
        active = self.active_slot
        if active in candidates:
            urgent_elsewhere = any(m.urgent for s, m in candidates.items() if s != active)
            if not candidates[active].urgent and urgent_elsewhere:
                return min((s for s, m in candidates.items() if m.urgent and s != active))
            wait = self.state[active].pacer.delay()
            if wait < SWITCH_AFTER_SECONDS and not (
                wait > 2 * self.switch_seconds
                and not candidates[active].urgent
                and any(s != active and self.state[s].pacer.delay() <= 0 for s in candidates)
            ):
                return active
        # Switching anyway: prefer urgent work, then the SIM that may send soonest.
        return min(
            candidates,
            key=lambda s: (not candidates[s].urgent, self.state[s].pacer.delay(), s),
        )

    @property
    def claims(self) -> bool:
        """Does this dispatcher send leased pool messages (claiming each first)?"""
        return self._claim is not None

    def _claim_batch(self, slot: int) -> int:
        """How many pool messages of the SIM to claim at once: the sends it will start within
        CLAIM_AHEAD_SECONDS (from its pacing gap and how long a submit takes there), at least
        the one it starts now. A real modem's submit takes seconds, so that is one; a fast one
        claims a few per round trip instead of one each."""
        st = self.state[slot]
        if st.send_seconds <= 0:
            return 1  # not measured yet
        n = 1 + int(CLAIM_AHEAD_SECONDS / max(st.pacer.gap(), st.send_seconds))
        left = st.pacer.cap_left()
        if left is not None:
            n = min(n, left)
        return max(1, min(n, MAX_CLAIM_BATCH))

    def _settle_failed(self, done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            # Harmless: those rows stay `leased` and are claimed again (the same answers).
            log.warning("device %s: claim answers not journaled (%s)", self.device,
                        done.exception())  # fmt: skip

    async def _claimed(self, msg: OutMessage) -> bool:
        """Claim a leased pool message just before its AT+CMGS (with the SIM's next ones it
        will start within CLAIM_AHEAD_SECONDS); True: the server committed `msg`."""
        if msg.claimed:
            return True
        claim = self._claim
        if claim is None or msg.lease_id is None:
            return False
        self.claiming = True
        batch = [msg]
        n = self._claim_batch(msg.slot)
        if n > 1:
            batch += await self.journal.next_claimable(msg, self._clock(), n - 1)
        answers = await claim([(m.lease_id or "", m.id) for m in batch])
        committed = [(m.id, m.lease_id) for m, a in zip(batch[1:], answers[1:], strict=True) if a]
        lost = [(m.id, m.lease_id) for m, a in zip(batch, answers, strict=True) if a is False]
        if committed or lost:
            # Not awaited when msg goes now: it reaches the disk with the `dispatching` mark
            # (one group commit). Lost with a crash, the committed ones are claimed again (the
            # repeat answers the same) and the rejected ones rejected again.
            settled = self.journal.settle_claims_nowait(self.device, committed, lost)
            settled.add_done_callback(self._settle_failed)
            if not answers[0]:
                await settled  # before the next look at the journal, which must see it
        if lost:
            # Their lease expired and they went back to their pool (or were handed back).
            log.info("device %s: %d pool message(s) went elsewhere before they were claimed",
                     self.device, len(lost))  # fmt: skip
            self.claims_lost += len(lost)
            if self._on_done is not None:
                self._on_done()  # their room is free again
        if answers[0] is None:
            # Kept: it may be committed with the answer lost. Pinned work goes on meanwhile.
            await self.journal.defer_claims(
                self.device, self.slots, self._clock() + CLAIM_RETRY_SECONDS
            )
            return False
        return bool(answers[0])

    async def _dispatch(self, msg: OutMessage) -> None:
        st = self.state[msg.slot]
        if not await self._claimed(msg):
            return
        claimed = None if msg.claimed else msg.lease_id
        if not await self.journal.begin_dispatch(
            self.device, msg.id, self._clock(), claimed_lease=claimed, slot=msg.slot
        ):
            return
        switching = self.active_slot != msg.slot
        # The modem switches SIM inside this send (on a single-standby modem).
        real_switch = self.active_slot is not None and switching and len(self.slots) > 1
        if real_switch:
            self.switches += 1
        if switching:
            self._active_since = self._clock()
        self.active_slot = msg.slot
        if msg.slot in self._survey:  # sending there makes it active: no visit needed
            self._survey.remove(msg.slot)
        if not self._survey:  # every SIM was active since the connect: the survey is over
            self._survey_home = None
        self.in_flight = msg.id
        self._outcome = asyncio.get_running_loop().create_future()
        sent = False  # then on_done comes when its outcome is on disk
        started = self._clock()
        try:
            result = await self.modem.send(msg.to, msg.body, slot=msg.slot)
        except SendError as err:
            await self._on_error(msg, err)
        except asyncio.CancelledError:
            # Forced stop mid-submit: the parts may be out. Say so now rather than at restart.
            await asyncio.shield(
                self.journal.finish_unknown(
                    self.device, msg.id, "agent stopped during AT+CMGS; not resent", self._clock()
                )
            )
            raise
        except Exception as exc:
            log.exception("device %s: message %d: modem backend raised", self.device, msg.id)
            await self.journal.finish_unknown(
                self.device, msg.id, f"modem backend error: {type(exc).__name__}", self._clock()
            )
            st.failed += 1
        else:
            at = result.sent_at.timestamp() if result.sent_at else self._clock()
            # Not awaited: the outcome rides along with the journal's next commit, at the
            # latest the one that marks our next message `dispatching`, so the modem is not
            # kept idle for an fsync. Nothing reads it before it is on disk (reads see committed
            # rows only), and listeners hear of it (on_done) only once it is.
            done = self.journal.finish_sent_nowait(
                self.device, msg.id, msg.slot, result.references, at
            )
            self._journaling, sent = done, True
            done.add_done_callback(functools.partial(self._sent_journaled, msg_id=msg.id))
            st.pacer.record_send()
            self._active_since = now = self._clock()  # busy on this SIM: no visit elsewhere yet
            took = max(0.0, now - started)
            if real_switch and st.sent:
                self._note_switch(took - st.send_seconds)  # the switch was part of this send
            else:
                st.send_seconds = took if not st.sent else 0.7 * st.send_seconds + 0.3 * took
            st.sent += 1
            if st.failures or st.pauses:
                st.failures = 0
                st.pauses = 0
            log.info(
                "device %s: message %d sent on SIM %d in %d part(s)",
                self.device, msg.id, msg.slot, len(result.references),
            )  # fmt: skip
        finally:
            self.in_flight = None
            outcome, self._outcome = self._outcome, None
            outcome.set_result(None)
            if switching and len(self.slots) > 1:
                self._switched(msg.slot)
            if self._on_done is not None and not sent:
                self._on_done()

    def _sent_journaled(self, done: asyncio.Future[None], msg_id: int) -> None:
        if done.cancelled() or done.exception() is not None:
            log.error(
                "device %s: message %d was sent but the journal could not record it (%s); it"
                " stays `dispatching` and becomes outcome-unknown at the next start, never resent",
                self.device, msg_id, "cancelled" if done.cancelled() else done.exception(),
            )  # fmt: skip
        if self._on_done is not None:
            self._on_done()

    async def _on_error(self, msg: OutMessage, err: SendError) -> None:
        now = self._clock()
        st = self.state[msg.slot]
        code = error_code(err)
        reason = str(err) or err.outcome.value
        st.last_error = f"{code} {reason}".strip()
        attempt = msg.attempts + 1
        log.warning(
            "device %s: message %d attempt %d on SIM %d failed (%s): %s",
            self.device, msg.id, attempt, msg.slot, err.outcome.value, st.last_error,
        )  # fmt: skip
        if err.outcome is SendOutcome.UNKNOWN:
            await self.journal.finish_unknown(self.device, msg.id, reason, now)
            st.failed += 1
        elif err.outcome is SendOutcome.RETRY and err.parts_sent > 0:
            await self.journal.finish_failed(
                self.device, msg.id, status=err.status, code=code,
                reason=f"{reason}; {err.parts_sent} part(s) already sent, not resent",
                now=now,
            )  # fmt: skip
            st.failed += 1
        elif err.outcome is SendOutcome.RETRY and attempt < self.policy.max_attempts:
            backoff = self.policy.retry_backoff_seconds * (2 ** (attempt - 1))
            backoff *= 1.0 + 0.25 * self._rand()  # jitter: two SIMs must not retry in lockstep
            await self.journal.finish_retry(self.device, msg.id, now + backoff, reason, now)
        else:
            if err.outcome is SendOutcome.RETRY:
                reason = f"{reason} (gave up after {attempt} attempts)"
            await self.journal.finish_failed(
                self.device, msg.id, status=err.status, code=code, reason=reason, now=now
            )
            st.failed += 1
        st.pacer.record_failure(throttled=err.cms in THROTTLE_CMS)
        if err.cms not in NUMBER_CMS:
            st.failures += 1
            if st.failures >= self.policy.sim_failure_threshold:
                await self._pause(msg.slot, now)

    async def _pause(self, slot: int, now: float) -> None:
        st = self.state[slot]
        pause = min(MAX_PAUSE_SECONDS, self.policy.sim_pause_seconds * (2**st.pauses))
        st.pauses += 1
        st.failures = 0
        st.paused_until = now + pause
        log.error(
            "device %s: SIM %d paused for %.0f s after repeated failures (last: %s)",
            self.device, slot, pause, st.last_error,
        )  # fmt: skip
        await self._status(
            slot, "paused", f"{self.policy.sim_failure_threshold} failures in a row, last: "
            f"{st.last_error}; paused until {iso(st.paused_until)}",
        )  # fmt: skip

    async def _status(self, slot: int, state: str, reason: str) -> None:
        if self._on_status is not None:
            await self._on_status(
                {"at": iso(self._clock()), "kind": "sim", "slot": slot, "state": state,
                 "reason": reason}
            )  # fmt: skip

    def counters(self) -> dict[int, dict[str, Any]]:
        return {
            s: {"sent": st.sent, "failed": st.failed, "last_error": st.last_error or None,
                "paused_until": iso(st.paused_until) if st.paused_until else None}
            for s, st in self.state.items()
        }  # fmt: skip
