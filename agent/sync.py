"""The sync loops of one device: hello, long-poll pull + commit, reports, incoming, status.

Order matters for never losing and never doubling (DESIGN.md 2 and 3):
- a pull answer is written to the journal *before* `commit`; only ids the server confirms become
  ours; a lease left open by a crash is committed again at start (the server answers a repeated
  commit of the same lease with the same lists);
- reports and incoming SMS leave from the journal, oldest first, and are marked done only when
  the server lists them as accepted, so a lost answer just means a harmless resend;
- while the server is away every loop backs off with full jitter (1 s doubling to 60 s) and the
  dispatcher keeps sending what is already committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agent.client import MAX_BATCH, AgentClient, Refused, ServerAway
from agent.journal import Journal, LeasedMessage
from agent.simview import SimsView

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
# Under load a pull waits this long at most for the backlog to drain to half (pull batching).
REFILL_WAIT_SECONDS = 1.0
REFUSED_RETRY_SECONDS = 300.0  # a refused token or hello: the operator must act; look again later
# The longest wait between tries while the server is away. A self-hosted server has a handful of
# agents, so a try every 7.5-15 s costs it nothing, while a 60 s ceiling kept new messages
# waiting up to a minute after a server restart (committed ones go out meanwhile regardless).
SERVER_BACKOFF_CAP = 15.0
# A parked poll whose SIM view went stale is replaced by a new one (the server ends the older
# pull of a device when a newer one comes). Changes are gathered this long first, so a burst of
# sends finishing costs one look at the view, not one each.
REPOLL_GATHER_SECONDS = 0.05


class Backoff:
    """Exponential back-off with jitter, a random wait between half and all of each step (so
    many agents do not reconnect in lockstep)."""

    def __init__(
        self,
        base: float = 1.0,
        cap: float = SERVER_BACKOFF_CAP,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base = base
        self.cap = cap
        self._rand = rand
        self.failures = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.failures))
        self.failures = min(self.failures + 1, 30)
        return self._rand(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


def _int(v: object, default: int, lo: int, hi: int) -> int:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return max(lo, min(hi, int(v)))
    return default


class Sync:
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
        self.repolls = 0  # parked polls replaced because the SIM view changed
        self._told: tuple[tuple[object, ...], ...] | None = None  # readiness the server heard
        self.status_interval = status_interval
        self._clock = clock
        self._rand = rand
        self.settings: dict[str, Any] = dict(DEFAULT_SETTINGS)
        self.device_id: int | None = None
        # None until the first call: unknown is not the same as away (see server_away).
        self.connected: bool | None = None
        self.stopping = False
        self._need_hello = True
        self._send_holding = True
        self._status_due = True
        self._hello_due = False
        self._reports_wake = asyncio.Event()
        self._incoming_wake = asyncio.Event()
        self._status_wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._view_changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._incoming_lock = asyncio.Lock()
        self._report_lock = asyncio.Lock()

    # -- signals from the rest of the agent -------------------------------------------------

    def wake_reports(self) -> None:
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

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleep, but return early on stop (and on `wake` if given)."""
        waiters = [asyncio.ensure_future(self._stop.wait())]
        if wake is not None:
            waiters.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waiters, timeout=max(0.0, seconds),
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            for w in waiters:
                w.cancel()

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
        if up and not self.connected:
            log.info("device %s: server reachable", self.device)
            # Flush what piled up while we were away.
            self.wake_reports()
            self.wake_incoming()
            self.wake_status()
        elif not up and self.connected:
            log.warning("device %s: server away (%s); backing off", self.device, why)
            self._need_hello = True
        elif not up:
            self._need_hello = True
        self.connected = up

    # -- pull and commit --------------------------------------------------------------------

    async def pull_loop(self) -> None:
        backoff = Backoff(rand=self._rand)
        await self.resolve_open_leases()
        while not self.stopping:
            try:
                if self._need_hello and not await self.hello():
                    await self._sleep(backoff.next())
                    continue
                pulled = await self.pull_once()
            except ServerAway as exc:
                self._set_connected(False, str(exc))
                await self._sleep(backoff.next())
                continue
            except Refused as err:
                self._need_hello = True
                await self._sleep(self._refused("pull", err))
                continue
            backoff.reset()
            if pulled is None:
                # Backlog full: wait until the dispatcher makes room instead of hoarding leases
                # another device could send.
                self._drained.clear()
                await self._sleep(5.0, self._drained)
            elif pulled:
                await self._refill_pause()

    async def _refill_pause(self) -> None:
        """Busy: let the local backlog drain to half of pull_max (at most REFILL_WAIT_SECONDS)
        before the next pull, so one pull and one commit serve several messages instead of
        one each as the dispatcher frees slot after slot. When idle this returns at once."""
        pull_max = _int(self.settings.get("pull_max"), 15, 1, 100)
        deadline = self._clock() + REFILL_WAIT_SECONDS
        while not self.stopping:
            if await self._refill_room(pull_max) >= max(1, pull_max // 2):
                return
            left = deadline - self._clock()
            if left <= 0:
                return
            self._drained.clear()
            await self._sleep(left, self._drained)

    async def _refill_room(self, pull_max: int) -> int:
        """The most any one ready SIM may take now (per SIM), or the device's room."""
        if self.per_sim and self._sims_view is not None:
            view = await self._sims_view(pull_max)
            return max((s.room for s in view.slots if s.ready), default=0)
        return pull_max - await self.journal.backlog(self.device)

    async def pull_once(self) -> int | None:
        """One long poll and its commit; the number of messages committed, None if backlogged.

        Per SIM (`sims`): pulls whenever a ready SIM has room, however full another SIM's
        queue is, and replaces a parked poll as soon as the view it sent is stale."""
        pull_max = _int(self.settings.get("pull_max"), 15, 1, 100)
        view: SimsView | None = None
        self._view_changed.clear()  # changes from here on are measured against this view
        if self.per_sim and self._sims_view is not None:
            view = await self._sims_view(pull_max)
            room, backlog = min(100, view.room), view.held
            if room <= 0 and view.readiness() != self._told:
                # No SIM can take anything, but one went down or came back: the server must
                # hear it (no pool work for a SIM that is down; the reason its pinned
                # messages wait). A server that honours `sims` leases nothing with room 0; one
                # from before pools that ignores the key may lease one message, which is
                # this device's own (pinned) anyway.
                room = 1
        else:
            backlog = await self.journal.backlog(self.device)  # leased, committed, releasing
            room = pull_max - backlog
        if room <= 0:
            return None
        wait = _int(self.settings.get("long_poll_seconds"), 25, 0, 60)
        started = self._clock()
        # The leases we journaled and still mean to commit (normally none: every pull's commit
        # finishes before the next pull). The server hands back the device's other open
        # leases, e.g. one whose answer a killed predecessor never journaled, instead of
        # letting them wait lease_seconds (agent-protocol.md, `holding`).
        holding = list(await self.journal.open_leases(self.device))[:100] if backlog else []
        answer = await self._long_poll(room, wait, holding, view, pull_max)
        if answer is None:
            return 0  # replaced: the caller pulls again at once, with the fresh view
        self._set_connected(True)
        messages, bad = _parse_messages(answer.get("messages"))
        for item in bad:
            log.error("device %s: skipping malformed pulled message: %.200r", self.device, item)
        lease_id = answer.get("lease_id")
        if not messages:
            if self._clock() - started < wait / 2:
                # The server did not hold the poll (or has no long poll): poll at the device's pace.
                delay = _int(self.settings.get("delaybetweenrequest"), 10, 1, 3600)
                await self._sleep(delay)
            return 0
        if not isinstance(lease_id, str) or not lease_id:
            log.error("device %s: pull answer without lease_id; ignoring it", self.device)
            return 0
        ids = await self.journal.add_leased(self.device, lease_id, messages, self._clock())
        return await self._commit(lease_id, ids)

    async def _pull_call(
        self, room: int, wait: int, holding: list[str], sims: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        while True:
            try:
                return await self.client.pull(
                    room, wait, holding if self._send_holding else None, sims
                )
            except Refused as err:
                if err.status != 400 or (sims is None and not self._send_holding):
                    raise
                if sims is not None:
                    # A server from before SIM pools may refuse the key: per-device pulls.
                    log.info("device %s: server refused 'sims' in pull (%s); pulling per device"
                             " from now on", self.device, err)  # fmt: skip
                    self.per_sim, sims = False, None
                    continue
                # A server from before `holding` may refuse the key: pull without it from now on.
                log.info("device %s: server refused 'holding' in pull (%s); not sending it again",
                         self.device, err)  # fmt: skip
                self._send_holding = False

    async def _long_poll(
        self,
        room: int,
        wait: int,
        holding: list[str],
        view: SimsView | None,
        pull_max: int,
    ) -> dict[str, Any] | None:
        """The pull itself; None when it was replaced because the SIM view went stale.

        While the server holds the poll, a send finishing, the modem going up or down, a SIM
        switch or pause, or a pacing gap ending may change what the SIMs can take. A poll
        that waits with a stale view would, for up to `wait` seconds, offer pool room a busy
        or dead SIM no longer has, or not offer what a freed SIM has. So the view is looked
        at again on every such change (gathered for REPOLL_GATHER_SECONDS) and, when it
        differs in what matters (SlotView.key), the poll is dropped and a new one sent: the
        server ends a device's older pull when a newer one comes. Dropping the connection
        leases nothing; should an answer have been on its way, its lease is not in the next
        pull's `holding`, so the server hands it back at once (and a late commit of it would
        be rejected), so nothing is lost or doubled.
        """
        if view is None:
            return await self._pull_call(room, wait, holding, None)
        self._told = view.readiness()
        req = asyncio.ensure_future(self._pull_call(room, wait, holding, view.wire()))
        try:
            while True:
                changed = asyncio.ensure_future(self._view_changed.wait())
                timeout = (
                    None if view.changes_at is None else max(0.0, view.changes_at - self._clock())
                )
                try:
                    await asyncio.wait({req, changed}, timeout=timeout,
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                finally:
                    changed.cancel()
                if req.done():
                    return req.result()
                if self.stopping or not self.per_sim:
                    return await req  # stop: the caller cancels us; fallback: its answer
                await asyncio.wait({req}, timeout=REPOLL_GATHER_SECONDS)
                if req.done():
                    return req.result()
                self._view_changed.clear()
                fresh = await self._sims_view(pull_max) if self._sims_view else view
                if fresh.key() != view.key() and not req.done():
                    req.cancel()
                    await asyncio.wait({req})
                    if not req.cancelled():
                        return req.result()  # it answered just before the cancel
                    self.repolls += 1
                    log.debug("device %s: SIM view changed; replacing the parked poll",
                              self.device)  # fmt: skip
                    return None
                view = fresh
        finally:
            if not req.done():
                req.cancel()

    async def _commit(self, lease_id: str, ids: list[int]) -> int:
        backoff = Backoff(rand=self._rand)
        while True:
            try:
                answer = await self.client.commit(lease_id, ids)
                break
            except ServerAway as exc:
                # Keep trying the same lease: if it expires, the server rejects the ids and
                # they go back to the queue; if it committed and the answer was lost, the
                # repeat answers the same lists.
                self._set_connected(False, str(exc))
                if self.stopping:
                    return 0  # left as `leased`; resolved at the next start
                await self._sleep(backoff.next())
            except Refused as err:
                log.warning(
                    "device %s: commit of lease refused (%s); dropping its %d message(s)",
                    self.device, err, len(ids),
                )  # fmt: skip
                await self.journal.drop_lease(self.device, lease_id)
                return 0
        committed = [i for i in _ints(answer.get("committed")) if i in ids]
        rejected = [i for i in ids if i not in committed]
        await self.journal.apply_commit(self.device, lease_id, committed, rejected)
        if rejected:
            log.info("device %s: server rejected %d leased id(s)", self.device, len(rejected))
        if committed and await self.journal.fail_foreign_slots(
            self.device, self.slots, self._clock()
        ):
            self.wake_reports()
        if committed:
            self._on_work()
        return len(committed)

    async def resolve_open_leases(self) -> None:
        """Leases journaled before a crash, with no commit answer: ask again."""
        for lease_id, ids in (await self.journal.open_leases(self.device)).items():
            log.info("device %s: re-committing %d message(s) of an open lease", self.device,
                     len(ids))  # fmt: skip
            await self._commit(lease_id, ids)

    # -- reports ----------------------------------------------------------------------------

    async def flush_reports(self) -> None:
        """Send every pending report event in order; raises ServerAway if the server is away."""
        async with self._report_lock:
            batch = MAX_BATCH
            while True:
                pending = await self.journal.pending_events(self.device, "report", batch)
                if not pending:
                    return
                try:
                    answer = await self.client.report([p.body for p in pending])
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
            self.flush_reports, self._reports_wake, "reports", gather=REPORT_GATHER_SECONDS
        )

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
        wake: asyncio.Event,
        what: str,
        *,
        gather: float = 0.0,
    ) -> None:
        backoff = Backoff(rand=self._rand)
        while not self.stopping:
            if gather:
                # Under load many events come in a burst: one request for all of them.
                await self._sleep(gather)
            wake.clear()
            try:
                await flush()
                backoff.reset()
            except ServerAway as exc:
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


def _parse_messages(raw: object) -> tuple[list[LeasedMessage], list[object]]:
    good: list[LeasedMessage] = []
    bad: list[object] = []
    if not isinstance(raw, list):
        return good, ([raw] if raw is not None else [])
    for m in raw:
        if (
            isinstance(m, dict)
            and isinstance(m.get("id"), int)
            and not isinstance(m.get("id"), bool)
            and isinstance(m.get("to"), str)
            and m["to"]
            and isinstance(m.get("body"), str)
            and isinstance(m.get("sim", 0), int)
            and (m.get("pool") is None or (isinstance(m["pool"], str) and m["pool"]))
        ):
            good.append(
                LeasedMessage(
                    id=m["id"],
                    to=m["to"],
                    body=m["body"],
                    sim=int(m.get("sim", 0)),
                    urgent=bool(m.get("urgent")),
                    pool=m.get("pool"),
                )
            )
        else:
            bad.append(m)
    return good, bad


def _ints(v: object) -> list[int]:
    return (
        [i for i in v if isinstance(i, int) and not isinstance(i, bool)]
        if isinstance(v, list)
        else []
    )


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
