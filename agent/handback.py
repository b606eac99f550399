"""Handing pool messages back to the server (`POST /agent/v1/release`, docs/agent-protocol.md).

A pool message the agent holds but has not started (leased and waiting for its claim, or
committed) belongs on a SIM that can send it. When one of the device's SIMs stops being ready
(modem unplugged or down, no SIM, PIN prompt, no network, failure-streak pause) for
HANDBACK_AFTER_SECONDS in a row, its unstarted pool messages are marked ``releasing`` in the
journal (on disk, never dispatched from then on), then released: the server puts the ids it
lists as `released` back in their pool (the journal forgets them) and keeps the ones it lists
as `kept` with this device (committed again). Pinned messages are never handed back; they
wait for their SIM.

The short grace keeps a blip (a SIM switch re-registering, a modem re-initialising) from
sending work away that the SIM would have sent a second later; the pull's `sims` list stops
new pool work for the SIM at once regardless. `releasing` rows left by a crash, or waiting
while the server is away, are released again at start and with the usual back-off; at a
graceful stop every unstarted pool message is handed back (agent/runner.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from simhive.agent.backoff import Backoff
from simhive.agent.client import MAX_BATCH, AgentClient, Refused, ServerAway
from simhive.agent.eventwait import Flag, wait_event
from simhive.agent.journal import Journal
from simhive.agent.pull import int_list
from simhive.agent.sync import REFUSED_RETRY_SECONDS

log = logging.getLogger(__name__)

HANDBACK_AFTER_SECONDS = 5.0  # a SIM not ready this long in a row hands its pool work back
RECHECK_SECONDS = 30.0  # a lost wake-up costs at most this long
STOP_REASON = "agent stopping"

Readiness = Callable[[], dict[int, tuple[bool, str]]]


class HandBack:
    def __init__(
        self,
        *,
        device: str,
        client: AgentClient,
        journal: Journal,
        readiness: Readiness,
        clock: Callable[[], float] = time.time,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.device = device
        self.client = client
        self.journal = journal
        self._readiness = readiness
        self._clock = clock
        self._rand = rand
        self.after_seconds = HANDBACK_AFTER_SECONDS
        self._down_since: dict[int, float] = {}
        self._marked: set[int] = set()  # slots handed back since they last were ready
        self._recheck = True  # look for pool rows on a not-ready SIM (start, after a commit)
        # `releasing` rows may wait in the journal (at start, after a mark, after a failed
        # call): only then is it read, so a commit on a healthy device costs no journal read.
        self._pending = True
        self._wake = Flag()
        self._stop = Flag()
        self.released = 0  # ids the server took back (counter for tests and logs)

    def wake(self, *, committed: bool = False) -> None:
        """Readiness may have changed, or a commit brought pool messages (`committed`)."""
        self._recheck = self._recheck or committed
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(rand=self._rand)
        while not self._stop.is_set():
            self._wake.clear()
            try:
                due = await self.check()
                backoff.reset()
            except ServerAway as exc:
                log.info("device %s: hand-back waits for the server (%s)", self.device, exc)
                await self._sleep(backoff.next())
                continue
            except Refused as err:
                log.error("device %s: server refused a hand-back: %s", self.device, err)
                await self._sleep(REFUSED_RETRY_SECONDS)
                continue
            await self._sleep(RECHECK_SECONDS if due is None else due, self._wake)

    async def check(self) -> float | None:
        """Mark what must go back, release everything marked; seconds until the next grace
        runs out (None: no SIM is on its way to a hand-back)."""
        now = self._clock()
        keep: list[int] = []
        reasons: list[str] = []
        fresh = False
        next_due: float | None = None
        for slot, (ready, why) in sorted(self._readiness().items()):
            if ready:
                self._down_since.pop(slot, None)
                self._marked.discard(slot)
                keep.append(slot)
                continue
            since = self._down_since.setdefault(slot, now)
            left = since + self.after_seconds - now
            if left > 0:
                keep.append(slot)
                next_due = left if next_due is None else min(next_due, left)
                continue
            reasons.append(f"SIM {slot + 1}: {why}")
            fresh = fresh or slot not in self._marked
            self._marked.add(slot)
        if reasons and (fresh or self._recheck):
            ids = await self.journal.mark_releasing(self.device, keep, "; ".join(reasons), now)
            if ids:
                self._pending = True
                log.warning("device %s: handing %d pool message(s) back (%s)", self.device,
                            len(ids), "; ".join(reasons))  # fmt: skip
        self._recheck = False
        if self._pending:
            await self.flush()
        return next_due

    async def flush(self) -> None:
        """Release every `releasing` row; raises ServerAway / Refused (rows stay marked)."""
        while True:
            batch = await self.journal.releasing(self.device, MAX_BATCH)
            if not batch:
                self._pending = False
                return
            ids = [i for i, _ in batch]
            answer = await self.client.release(ids, batch[0][1])
            released = [i for i in int_list(answer.get("released")) if i in ids]
            kept = [i for i in int_list(answer.get("kept")) if i in ids]
            await self.journal.apply_release(self.device, released, kept, self._clock())
            self.released += len(released)
            if kept:
                log.info("device %s: server keeps %d message(s) here (pinned): %s", self.device,
                         len(kept), ", ".join(map(str, kept[:10])))  # fmt: skip
            missing = set(ids) - set(released) - set(kept)
            if missing:
                # Neither answer: they stay `releasing` (never sent) and are asked about again
                # at the next look, not in a tight loop now.
                log.warning("device %s: release answer did not mention %d id(s): %s",
                            self.device, len(missing), sorted(missing)[:10])  # fmt: skip
                return
            if len(batch) < MAX_BATCH:
                return

    async def final(self, seconds: float) -> None:
        """Graceful stop (dispatchers already stopped): hand back every unstarted pool message,
        best effort within `seconds`; what the server does not answer stays `releasing` and is
        released at the next start."""
        ids = await self.journal.mark_releasing(self.device, [], STOP_REASON, self._clock())
        if ids:
            log.info("device %s: handing %d pool message(s) back before stopping", self.device,
                     len(ids))  # fmt: skip
        try:
            await asyncio.wait_for(self.flush(), seconds)
        except (ServerAway, Refused, TimeoutError) as exc:
            log.warning("device %s: hand-back at stop failed (%s); it is retried at the next"
                        " start", self.device, type(exc).__name__)  # fmt: skip

    async def _sleep(self, seconds: float, wake: Flag | None = None) -> None:
        # One event, waited on in this task (agent/eventwait.py): stop() sets `_wake` too.
        if not self._stop.is_set():
            await wait_event(self._stop if wake is None else wake, seconds)
