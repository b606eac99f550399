"""Pull and commit: the long poll that brings work, per SIM (`sims`) or per device.

Order matters for never losing and never doubling (docs/reliability.md): a pull answer is
written to the journal *before* `commit`; only ids the server confirms become ours; a lease
left open by a crash is committed again at start (the server answers a repeated commit of the
same lease with the same lists).

Per SIM, the agent pulls whenever a ready SIM has room, however full another SIM's queue is,
and tells the server each SIM's readiness and room (agent/simview.py); a parked poll whose
view went stale is replaced at once (`_long_poll`). A mixin of `agent.sync.Sync`, like the
journal's areas: it uses the hello, back-off and wake-ups of the sync loops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from simhive.agent.backoff import Backoff
from simhive.agent.client import AgentClient, Refused, ServerAway
from simhive.agent.eventwait import Flag, wait_flags
from simhive.agent.journal import Journal, LeasedMessage
from simhive.agent.simview import SimsView

log = logging.getLogger(__name__)

# Under load a pull waits this long at most for the backlog to drain to half (pull batching).
REFILL_WAIT_SECONDS = 1.0
# A parked poll whose SIM view went stale is replaced by a new one (the server ends the older
# pull of a device when a newer one comes). Changes are gathered this long first, so a burst of
# sends finishing costs one look at the view, not one each.
REPOLL_GATHER_SECONDS = 0.05


class PullMixin:
    if TYPE_CHECKING:  # provided by agent.sync.Sync
        device: str
        client: AgentClient
        journal: Journal
        slots: list[int]
        settings: dict[str, Any]
        stopping: bool
        per_sim: bool
        claims: bool
        repolls: int
        _sims_view: Callable[[int], Awaitable[SimsView]] | None
        _told: tuple[tuple[object, ...], ...] | None
        _need_hello: bool
        _send_holding: bool
        _drained: Flag
        _view_changed: Flag
        _on_work: Callable[[], None]
        _clock: Callable[[], float]
        _rand: Callable[[float, float], float]

        async def hello(self) -> bool: ...
        async def _sleep(self, seconds: float, wake: Flag | None = None) -> None: ...
        def _set_connected(self, up: bool, why: str = "") -> None: ...
        def _refused(self, what: str, err: Refused) -> float: ...
        def wake_reports(self) -> None: ...
        async def commit(self, lease_id: str, ids: list[int]) -> dict[str, Any]: ...

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
        """Busy: wait (at most REFILL_WAIT_SECONDS) until some ready SIM has room for half of
        pull_max (per device without `sims`) before the next pull, so one pull and one commit
        serve several messages instead of one each as the dispatcher frees slot after slot.
        When idle, or when another SIM has room, this returns at once."""
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
        if not self.claims:
            return await self._commit(lease_id, ids)
        # Commit = claim: pinned messages are committed now; pool messages stay leased until
        # their SIM is about to send them (agent/claim.py), so a killed agent holds none of them
        # committed and unstarted. Their lease is in `holding` meanwhile.
        pool = {m.id for m in messages if m.pool is not None}
        pinned = [i for i in ids if i not in pool]
        committed = await self._commit(lease_id, pinned) if pinned else 0
        claimable = len(ids) - len(pinned)
        if claimable:
            self._on_work()
        return committed + claimable

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
        # The answer and a view change wake this task through one future (wait_flags): no
        # task per wait, as `asyncio.wait` over the request and a Flag.wait() task needed.
        answered = Flag()
        req.add_done_callback(lambda _req: answered.set())
        try:
            while True:
                timeout = (
                    None if view.changes_at is None else max(0.0, view.changes_at - self._clock())
                )
                await wait_flags((answered, self._view_changed), timeout)
                if req.done():
                    return req.result()
                if self.stopping:
                    return None  # the poll is dropped (finally); nothing was leased by it
                if not self.per_sim:
                    return await req  # the server refused `sims`: the retry without them
                await wait_flags((answered,), REPOLL_GATHER_SECONDS)
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
        except (ServerAway, Refused):
            self._told = None  # the server may not have heard it: say it again next time
            raise
        finally:
            if not req.done():
                req.cancel()

    async def _commit(self, lease_id: str, ids: list[int]) -> int:
        backoff = Backoff(rand=self._rand)
        while True:
            try:
                answer = await self.commit(lease_id, ids)  # with reports, if any (agent/sync.py)
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
        committed = [i for i in int_list(answer.get("committed")) if i in ids]
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
        """Leases journaled before a crash, with no commit answer: ask again (for pool
        messages the claim before their send asks)."""
        leases = await self.journal.open_leases(self.device, pinned_only=self.claims)
        for lease_id, ids in leases.items():
            log.info("device %s: re-committing %d message(s) of an open lease", self.device,
                     len(ids))  # fmt: skip
            await self._commit(lease_id, ids)


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


def int_list(v: object) -> list[int]:
    return (
        [i for i in v if isinstance(i, int) and not isinstance(i, bool)]
        if isinstance(v, list)
        else []
    )


def _int(v: object, default: int, lo: int, hi: int) -> int:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return max(lo, min(hi, int(v)))
    return default
