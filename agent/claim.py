"""Commit = claim: a pool message is committed only when its SIM is about to send it.

A pinned message is committed right after its pull (agent/pull.py): it may only ever leave on
its own SIM, so nothing is gained by waiting. A pool message stays `leased` in the journal
until its dispatcher has picked it for AT+CMGS; the dispatcher then claims it here, which is a
`commit` of that one id under its lease. Only "committed" lets it go; "rejected" (the lease
expired and the message went back to its pool, or it was handed back meanwhile) drops it. A
killed agent therefore holds, besides the message on the radio, only uncommitted leases, and
the server puts those back in the pool when they expire (docs/routing.md).

No answer (the server is away, the connection broke) is neither: the server may have
committed the message and lost only the answer, so the message is kept and claimed again
later. A commit is idempotent, so the repeat answers "committed" for such a message, and
"rejected" only for one that never was committed and whose lease has gone.

The claims of a device's SIMs that come while one request is out go together in the next one
(one request per lease), so several SIMs finishing a send at once cost one round trip, not one
each. The device's pending report events ride along with a claim (agent/sync.py, `commit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simhive.agent.client import Refused, ServerAway
from simhive.agent.pull import int_list

log = logging.getLogger(__name__)

# Refusals that say nothing about the lease (the token was revoked or replaced): the message may
# be committed to this device already, so it is kept and claimed again later.
KEEP_ON_REFUSAL = frozenset({401, 403})


@dataclass
class _Claim:
    lease_id: str
    msg_id: int
    future: asyncio.Future[bool | None]


# `commit` of a lease's ids: AgentClient.commit, or Sync.commit, which lets reports ride along.
CommitCall = Callable[[str, list[int]], Awaitable[dict[str, Any]]]


class Claimer:
    def __init__(self, device: str, commit: CommitCall) -> None:
        self.device = device
        self._commit_call = commit
        self._waiting: list[_Claim] = []
        self._task: asyncio.Task[None] | None = None
        self.requests = 0  # commit calls made for claims (counter for tests and benchmarks)

    async def claim(self, claims: Sequence[tuple[str, int]]) -> list[bool | None]:
        """Claim each (lease id, message id), all in the next request(s); per claim in order:
        True: committed, this device's to send now. False: not this device's (drop it).
        None: no answer; keep it and claim it again later.

        The caller waits on the claims' futures itself rather than through a task per claim
        (`asyncio.gather` of coroutines): one SMS used to cost a task here."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[bool | None]] = []
        for lease_id, msg_id in claims:
            future: asyncio.Future[bool | None] = loop.create_future()
            self._waiting.append(_Claim(lease_id, msg_id, future))
            futures.append(future)
        if futures and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name=f"{self.device}:claim")
        return [await f for f in futures]

    async def _run(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            by_lease: dict[str, list[_Claim]] = {}
            for c in batch:
                by_lease.setdefault(c.lease_id, []).append(c)
            if len(by_lease) == 1:  # the usual case: no task per request
                ((lease_id, claims),) = by_lease.items()
                await self._commit(lease_id, claims)
            else:
                await asyncio.gather(*(self._commit(lease, cs) for lease, cs in by_lease.items()))

    async def _commit(self, lease_id: str, claims: list[_Claim]) -> None:
        ids = list(dict.fromkeys(c.msg_id for c in claims))
        answer: set[int] | None
        self.requests += 1
        try:
            committed = (await self._commit_call(lease_id, ids)).get("committed")
            answer = set(int_list(committed))
        except ServerAway as exc:
            log.info("device %s: claim of %d pool message(s) unanswered (%s); kept for a later"
                     " try", self.device, len(ids), exc)  # fmt: skip
            answer = None
        except Refused as err:
            if err.status in KEEP_ON_REFUSAL:
                log.warning("device %s: claim refused (%s); kept for a later try", self.device,
                            err)  # fmt: skip
                answer = None
            else:
                log.warning("device %s: claim of lease refused (%s); dropping %d message(s)",
                            self.device, err, len(ids))  # fmt: skip
                answer = set()
        except BaseException as exc:  # cancelled or a bug: nobody may wait forever
            for c in claims:
                if not c.future.done():
                    c.future.set_result(None)
            if isinstance(exc, Exception):
                log.exception("device %s: claim failed", self.device)
                return
            raise
        for c in claims:
            if not c.future.done():
                c.future.set_result(None if answer is None else c.msg_id in answer)
