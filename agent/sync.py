"""The sync loops of one device: hello, long-poll pull + commit (agent/pull.py), reports,
incoming, status.

Order matters for never losing and never doubling (docs/reliability.md):
- a pull answer is written to the journal *before* `commit` (agent/pull.py);
- reports and incoming SMS leave from the journal, oldest first, and are marked done only when
  the server lists them as accepted, so a lost answer just means a harmless resend;
- while the server is away every loop backs off with jitter (1 s doubling to 15 s,
  agent/backoff.py) and the dispatcher keeps sending what is already committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from simhive.agent.backoff import Backoff
from simhive.agent.client import MAX_BATCH, AgentClient, Refused, ServerAway
from simhive.agent.eventwait import Flag, wait_event
from simhive.agent.journal import Journal
from simhive.agent.pull import PullMixin
from simhive.agent.serverhint import server_hint
from simhive.agent.simview import SimsView

log = logging.getLogger(__name__)

DEFAULT_SETTINGS: dict[str, Any] = {
    "delaybetweenrequest": 10,
    "delaybetweeneachsms": None,
    "pull_max": 15,
    "lease_seconds": 120,
    "long_poll_seconds": 25,
    "sims": {},
}
REPORT_GATHER_SECONDS = 0.05  # a status is seconds old anyway; batching saves a request each
# While reports keep coming, one device sends at most one report request per this long. Under
# load a busy SIM finishes a message every few ms, each with a "sent" and a "delivered" event:
# without the spacing nearly every event was a request of its own (about 2 per SMS at 64
# modems, each costing the agent and the server more than the SMS's own work). The first
# report after a quiet spell still leaves after REPORT_GATHER_SECONDS.
REPORT_SPACING_SECONDS = 0.5
# Report events ride along with a `commit` (a claim, or the commit after a pull) when the device
# has some pending: under load a claim goes out every few sends, so reports need no requests of
# their own (docs/agent-protocol.md, `commit`). At most this many per commit, so a claim's
# request stays small; the report loop sends the rest.
REPORTS_WITH_COMMIT = 100
# While a device's commits (claims) come more often than this, the report loop leaves pending
# events to the next one rather than send a report of its own (Sync._hold_reports).
CLAIM_PACE_SECONDS = 1.0
REFUSED_RETRY_SECONDS = 300.0
# While the server stays unreachable, the warning is repeated this often (not per retry).
UNREACHABLE_LOG_SECONDS = 300.0  # a refused token or hello: the operator must act; look again later


class Sync(PullMixin):
    def __init__(
        self,
        *,
        device: str,
        client: AgentClient,
        journal: Journal,
        slots: list[int],
        hello_payload: Callable[[], Awaitable[tuple[dict[str, Any], list[dict[str, Any]]]]],
        sims_payload: Callable[[], Awaitable[list[dict[str, Any]] | None]],
        on_settings: Callable[[dict[str, Any]], None],
        on_work: Callable[[], None],
        sims_view: Callable[[int], Awaitable[SimsView]] | None = None,
        claims: bool = False,
        claims_coming: Callable[[], bool] | None = None,
        status_interval: float = 300.0,
        clock: Callable[[], float] = time.time,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.device = device
        self.client = client
        self.journal = journal
        self.slots = slots
        self._hello_payload = hello_payload
        self._sims_payload = sims_payload
        self._on_settings = on_settings
        self._on_work = on_work
        # Per-SIM pulls (`sims`) while the server takes them; a server from before SIM pools
        # refuses the key with 400 and gets per-device pulls, as before.
        self._sims_view = sims_view
        self.per_sim = sims_view is not None
        # Pool messages are committed by the dispatchers' claims just before their send
        # (agent/claim.py), not with the pull's commit.
        self.claims = claims
        # Is a dispatcher claiming pool messages one after another (see _hold_reports)?
        self._claims_coming = claims_coming
        self.repolls = 0  # parked polls replaced because the SIM view changed
        self._told: tuple[tuple[object, ...], ...] | None = None  # readiness the server heard
        self.status_interval = status_interval
        self._clock = clock
        self._rand = rand
        self.settings: dict[str, Any] = dict(DEFAULT_SETTINGS)
        self.device_id: int | None = None
        # None until the first call: unknown is not the same as away (see server_away).
        self.connected: bool | None = None
        self._away_since: float | None = None  # start of the current outage
        self._away_warned: float | None = None  # when the outage was last logged
        self.stopping = False
        self._need_hello = True
        self._send_holding = True
        self._status_due = True
        self._hello_due = False
        self._reports_wake = Flag()
        self._incoming_wake = Flag()
        self._status_wake = Flag()
        self._drained = Flag()
        self._view_changed = Flag()
        self._stop = Flag()
        self._incoming_lock = asyncio.Lock()
        self._report_lock = asyncio.Lock()
        self.report_spacing = REPORT_SPACING_SECONDS
        # Report events may be pending (set with every wake-up of the report loop, cleared when
        # a report reads them): a commit reads the journal for events to carry only then, so
        # a claim on an idle gateway, whose reports went out long before, costs no extra read.
        self._reports_pending = True
        self._carry_from = 0.0  # clock time from which commits carry reports (see commit)
        # When (loop time) the last commit went out, and the usual gap between two (a moving
        # average): how soon the next claim will come to take reports along (_hold_reports).
        self._last_commit: float | None = None
        self._commit_gap: float | None = None
        self.reports_carried = 0  # commits that carried report events (tests and benchmarks)

    # -- signals from the rest of the agent -------------------------------------------------

    def wake_reports(self) -> None:
        self._reports_pending = True
        self._reports_wake.set()

    def wake_incoming(self) -> None:
        self._incoming_wake.set()

    def wake_status(self) -> None:
        """SIM info or modem state changed: send a status soon, with fresh SIM info."""
        self._status_due = True
        self._status_wake.set()

    @property
    def server_away(self) -> bool:
        """True only after a call failed and none has succeeded since."""
        return self.connected is False

    def request_hello(self) -> None:
        """Device facts changed (e.g. the modem came up after the first hello): say hello again."""
        self._hello_due = True
        self.wake_status()

    def work_done(self) -> None:
        """The dispatcher finished a message: there may be room to pull more."""
        self._drained.set()
        self._view_changed.set()

    def sims_changed(self) -> None:
        """A SIM's readiness may have changed (modem state, switch, pause): look again."""
        self._drained.set()
        self._view_changed.set()

    def stop(self) -> None:
        self.stopping = True
        self._stop.set()
        for ev in (self._reports_wake, self._incoming_wake, self._status_wake, self._drained,
                   self._view_changed):  # fmt: skip
            ev.set()

    async def _sleep(self, seconds: float, wake: Flag | None = None) -> None:
        """Sleep, but return early on stop (and on `wake` if given).

        One event is waited on, in this task (agent/eventwait.py says why): stop() sets every
        wake event along with `_stop`, so a wait on `wake` ends on stop as well."""
        if not self._stop.is_set():
            await wait_event(self._stop if wake is None else wake, seconds)

    def _refused(self, what: str, err: Refused) -> float:
        if err.status == 401:
            log.error("device %s: server refused the device token (%s)", self.device, what)
        else:
            log.error("device %s: server refused %s: %s", self.device, what, err)
        return REFUSED_RETRY_SECONDS

    # -- hello ------------------------------------------------------------------------------

    async def hello(self) -> bool:
        """One hello; True when the server answered with settings."""
        device, sims = await self._hello_payload()
        try:
            answer = await self.client.hello(device, sims)
        except ServerAway as exc:
            self._set_connected(False, str(exc))
            return False
        settings = answer.get("settings")
        if isinstance(settings, dict):
            self.settings = {**DEFAULT_SETTINGS, **settings}
            self._on_settings(self.settings)
        did = answer.get("device_id")
        self.device_id = did if isinstance(did, int) else self.device_id
        self._need_hello = False
        self._set_connected(True)
        log.info("device %s: hello ok (server device id %s)", self.device, self.device_id)
        return True

    def _set_connected(self, up: bool, why: str = "") -> None:
        now = self._clock()
        url = self.client.base_url
        if up and not self.connected:
            if self._away_since is not None:
                # Said at the level the outage was, so whoever saw that warning sees this.
                log.warning("device %s: server %s reachable again after %.0f s", self.device,
                            url, now - self._away_since)  # fmt: skip
            else:
                log.info("device %s: server %s reachable", self.device, url)
            self._away_since = self._away_warned = None
            # Flush what piled up while we were away.
            self.wake_reports()
            self.wake_incoming()
            self.wake_status()
        elif not up:
            self._need_hello = True
            if self._away_since is None:
                self._away_since = now
            # Every loop retries with back-off; the log says it once at the start of an
            # outage (also one that began before the first successful call) and then every
            # UNREACHABLE_LOG_SECONDS, not once per retry.
            if self._away_warned is None or now - self._away_warned >= UNREACHABLE_LOG_SECONDS:
                first = self._away_warned is None
                self._away_warned = now
                log.warning(
                    "device %s: cannot reach the server at %s%s (%s); hint: %s. Retrying with"
                    " back-off; work waits in the journal",
                    self.device, url,
                    "" if first else f" for {now - self._away_since:.0f} s", why,
                    server_hint(why, url),
                )  # fmt: skip
        self.connected = up

    # -- reports ----------------------------------------------------------------------------

    async def flush_reports(self) -> None:
        """Send every pending report event in order; raises ServerAway if the server is away."""
        async with self._report_lock:
            self._reports_pending = False  # an event written from here on sets it again
            try:
                await self._flush_reports()
            except BaseException:
                self._reports_pending = True
                raise

    async def _flush_reports(self) -> None:
        batch = MAX_BATCH
        while True:
            pending = await self.journal.pending_events(self.device, "report", batch)
            if not pending:
                return
            try:
                answer = await self.client.report_raw([p.raw for p in pending])
            except Refused as err:
                if err.status == 413 and batch > 1:
                    batch = max(1, batch // 4)
                    continue
                if len(pending) > 1:
                    batch = 1  # find the one event the server refuses; send the rest
                    continue
                log.error("device %s: server refuses report event %s: %s", self.device,
                          pending[0].event_id, err)  # fmt: skip
                await self.journal.events_done(
                    self.device, "report", [pending[0].event_id], error=str(err)
                )
                continue
            self._set_connected(True)
            accepted = set(_strs(answer.get("accepted")))
            done = [p.event_id for p in pending if p.event_id in accepted]
            await self.journal.events_done(self.device, "report", done)
            missing = [p.event_id for p in pending if p.event_id not in accepted]
            if missing:
                log.warning("device %s: server did not accept report events %s",
                            self.device, ", ".join(missing[:5]))  # fmt: skip
                await self.journal.events_done(
                    self.device, "report", missing, error="not accepted by server"
                )
            if len(pending) < batch:
                # That was all; an event written meanwhile has set the wake event, and
                # the report loop comes back for it.
                return

    async def report_loop(self) -> None:
        await self._flush_loop(
            self.flush_reports, self._reports_wake, "reports", gather=REPORT_GATHER_SECONDS,
            spacing=self.report_spacing, hold=self._hold_reports,
        )  # fmt: skip

    def _hold_reports(self) -> float | None:
        """How long the report loop leaves the pending events to the next claim (Sync.commit)
        before it reports them itself, or None: report now.

        Only while a dispatcher is claiming pool messages one after another and the device's
        commits come more often than once per CLAIM_PACE_SECONDS: then the events wait until
        the next commit is due (half its usual gap again, for its jitter), and go with it.
        On an idle gateway (the dispatchers found nothing more to claim right after their
        send) or on modems whose submits take seconds, nothing is held back. Holding also
        makes the next commit look for events (also one written without a wake-up, which
        only the report loop's periodic look would find)."""
        gap, last = self._commit_gap, self._last_commit
        if (gap is None or last is None or gap > CLAIM_PACE_SECONDS
                or self._clock() < self._carry_from
                or self._claims_coming is None or not self._claims_coming()):  # fmt: skip
            return None
        wait = last + 1.5 * gap - asyncio.get_running_loop().time()
        if wait <= 0:
            return None  # the commit is overdue: something else holds the claims up
        self._reports_pending = True
        return wait

    async def commit(self, lease_id: str, ids: list[int]) -> dict[str, Any]:
        """`commit` (a claim, or the commit after a pull), carrying the device's pending report
        events when there are any and no report is under way: one request instead of two.

        The commit's answer is never affected: a refusal or a server from before the key
        (no `accepted` in its answer) makes it the plain commit again, and the events stay
        pending for the report loop. The claim does not wait for the events' `done` marks to
        reach the disk; the report lock is held until they have, so the report loop cannot
        send them again meanwhile (a crash before that only sends them again: harmless)."""
        now = asyncio.get_running_loop().time()
        if self._last_commit is not None:
            # Capped, so an idle spell does not make the average useless for long.
            gap = min(now - self._last_commit, 2 * CLAIM_PACE_SECONDS)
            self._commit_gap = gap if self._commit_gap is None else (
                0.7 * self._commit_gap + 0.3 * gap
            )  # fmt: skip
        self._last_commit = now
        if (not self._reports_pending or self._report_lock.locked()
                or self._clock() < self._carry_from):  # fmt: skip
            return await self.client.commit(lease_id, ids)
        await self._report_lock.acquire()  # free (checked above, no await since): no wait
        unlock = True
        try:
            self._reports_pending = False  # an event written from here on sets it again
            pending = await self.journal.pending_events(self.device, "report", REPORTS_WITH_COMMIT)
            if not pending:
                return await self.client.commit(lease_id, ids)
            if len(pending) == REPORTS_WITH_COMMIT:
                self._reports_pending = True  # more than one commit carries
            try:
                answer = await self.client.commit(lease_id, ids, [p.raw for p in pending])
            except Refused as err:
                # Perhaps for the lease (then the commit alone is refused too, as it would
                # have been), perhaps for an event: then not carried for a while, and the
                # report loop finds which one.
                self._reports_pending = True
                self._reports_wake.set()
                answer = await self.client.commit(lease_id, ids)
                log.info("device %s: commit with report events refused (%s), without them"
                         " answered", self.device, err)  # fmt: skip
                self._carry_from = self._clock() + REFUSED_RETRY_SECONDS
                return answer
            accepted = answer.get("accepted")
            if not isinstance(accepted, list):
                # A server from before reports rode with commits ignores the key.
                log.info("device %s: server does not take report events with a commit;"
                         " reporting separately", self.device)  # fmt: skip
                self._carry_from = float("inf")
                self._reports_pending = True
                self._reports_wake.set()
                return answer
            got = set(_strs(accepted))
            done = [p.event_id for p in pending if p.event_id in got]
            missing = [p.event_id for p in pending if p.event_id not in got]
            if missing:
                log.warning("device %s: server did not accept report events %s",
                            self.device, ", ".join(missing[:5]))  # fmt: skip
            marked = self.journal.events_done_nowait(
                self.device, "report", done, missing, "not accepted by server"
            )
            marked.add_done_callback(self._carried_marked)
            unlock = False  # released once the marks are on disk
            self.reports_carried += 1
            return answer
        except BaseException:
            self._reports_pending = True
            raise
        finally:
            if unlock:
                self._report_lock.release()

    def _carried_marked(self, marked: asyncio.Future[None]) -> None:
        self._report_lock.release()
        if marked.cancelled() or marked.exception() is not None:
            # Still pending in the journal: reported again, which the server answers the same.
            self._reports_pending = True
            self._reports_wake.set()

    # -- incoming ---------------------------------------------------------------------------

    async def flush_incoming(self) -> None:
        async with self._incoming_lock:
            while True:
                pending = await self.journal.pending_incoming(self.device, MAX_BATCH)
                if not pending:
                    return
                try:
                    answer = await self.client.incoming(pending)
                except Refused as err:
                    log.error("device %s: server refuses incoming SMS batch: %s", self.device, err)
                    if len(pending) == 1 or err.status == 401:
                        if err.status == 401:
                            raise
                        await self.journal.mark_refused(self.device, [pending[0]["key"]])
                        continue
                    # Offer them one at a time so one bad record does not hold the rest.
                    for m in pending:
                        try:
                            one = await self.client.incoming([m])
                        except Refused:
                            await self.journal.mark_refused(self.device, [m["key"]])
                            continue
                        await self.journal.mark_forwarded(self.device, _accepted_keys(one))
                    continue
                self._set_connected(True)
                accepted = _accepted_keys(answer)
                await self.journal.mark_forwarded(self.device, accepted)
                got = {k for k, _ in accepted}
                missing = [m["key"] for m in pending if m["key"] not in got]
                if missing:
                    log.warning("device %s: server did not accept %d incoming SMS",
                                self.device, len(missing))  # fmt: skip
                    await self.journal.mark_refused(self.device, missing)

    async def forward_incoming_now(self, key: str, seconds: float) -> bool:
        """Try to hand one journaled SMS to the server within `seconds`; True if it has it."""
        try:
            await asyncio.wait_for(self.flush_incoming(), seconds)
        except (ServerAway, Refused, TimeoutError) as exc:
            log.info("device %s: incoming SMS kept in the journal for later (%s)", self.device,
                     type(exc).__name__)  # fmt: skip
            self.wake_incoming()
            return False
        return await self.journal.is_forwarded(self.device, key)

    async def incoming_loop(self) -> None:
        await self._flush_loop(self.flush_incoming, self._incoming_wake, "incoming")

    # -- status -----------------------------------------------------------------------------

    async def flush_status(self) -> None:
        pending = await self.journal.pending_events(self.device, "status", MAX_BATCH)
        sims = await self._sims_payload()
        await self.client.status(sims, [p.body for p in pending])
        self._set_connected(True)
        await self.journal.events_done(self.device, "status", [p.event_id for p in pending])

    async def status_loop(self) -> None:
        backoff = Backoff(rand=self._rand)
        next_periodic = self._clock() + self.status_interval
        while not self.stopping:
            self._status_wake.clear()
            if self._hello_due:
                self._hello_due = False
                try:
                    ok = await self.hello()
                except Refused as err:
                    ok = False
                    self._refused("hello", err)
                if not ok:
                    self._hello_due = True
                    await self._sleep(backoff.next())
                    continue
            pending = await self.journal.count_pending_events(self.device, "status")
            if pending or self._status_due or self._clock() >= next_periodic:
                self._status_due = False
                try:
                    await self.flush_status()
                    backoff.reset()
                    next_periodic = self._clock() + self.status_interval
                except ServerAway as exc:
                    self._status_due = True
                    self._set_connected(False, str(exc))
                    await self._sleep(backoff.next())
                    continue
                except Refused as err:
                    await self._sleep(self._refused("status", err))
                    continue
            await self._sleep(max(0.0, next_periodic - self._clock()), self._status_wake)

    # -- shared -----------------------------------------------------------------------------

    async def _flush_loop(
        self,
        flush: Callable[[], Awaitable[None]],
        wake: Flag,
        what: str,
        *,
        gather: float = 0.0,
        spacing: float = 0.0,
        hold: Callable[[], float | None] | None = None,
    ) -> None:
        backoff = Backoff(rand=self._rand)
        loop = asyncio.get_running_loop()
        last_ok: float | None = None  # when the last successful flush started (loop time)
        while not self.stopping:
            pause = gather
            if last_ok is not None:
                pause = max(pause, last_ok + spacing - loop.time())
            if pause > 0:
                # Under load many events come in a burst: one request for all of them.
                await self._sleep(pause)
            # Under load the next claim takes the events along (Sync.commit): left to it
            # for a while, the report loop sends only what no claim took.
            while hold is not None and not self.stopping:
                wait = hold()
                if wait is None:
                    break
                await self._sleep(wait)
            wake.clear()
            started = loop.time()
            try:
                await flush()
                backoff.reset()
                last_ok = started
            except ServerAway as exc:
                last_ok = None  # the back-off paces the retries
                self._set_connected(False, str(exc))
                await self._sleep(backoff.next())
                continue
            except Refused as err:
                await self._sleep(self._refused(what, err))
                continue
            # Also look again now and then: cheap, and covers a wake-up lost in a race.
            await self._sleep(30.0, wake)

    async def final_flush(self, seconds: float) -> None:
        """At shutdown: one best-effort round of reports, incoming and status."""
        for flush in (self.flush_reports, self.flush_incoming, self.flush_status):
            with contextlib.suppress(ServerAway, Refused, TimeoutError):
                await asyncio.wait_for(flush(), seconds)


def _strs(v: object) -> list[str]:
    return [s for s in v if isinstance(s, str)] if isinstance(v, list) else []


def _accepted_keys(answer: dict[str, Any]) -> list[tuple[str, int | None]]:
    out: list[tuple[str, int | None]] = []
    acc = answer.get("accepted")
    if isinstance(acc, list):
        for a in acc:
            if isinstance(a, dict) and isinstance(a.get("key"), str):
                sid = a.get("sms_id")
                out.append((a["key"], sid if isinstance(sid, int) else None))
    return out
