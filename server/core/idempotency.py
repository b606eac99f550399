"""Idempotency keys: a request retried with the same key is stored once and answered the same.

A client that lost an answer (timeout, dropped connection) cannot know whether its request was
stored; with a key, its retry gets the first request's answer instead of storing it again.

- The key is claimed in the store before the request's own write and its answer recorded after
  it. A retry finds the answer; a retry while the first is still running waits for it and gets
  the same answer, whichever connection it came on.
- The work runs to its end even when the client disconnects (that is exactly when the retry
  comes), in a task of its own.
- A request that failed before storing anything (bad input, store unavailable) frees its key:
  its retry runs anew.
- A claimed key without an answer that no running request owns (the server stopped between the
  write and the answer) has an unknown outcome: its retry is refused, never stored a second time.

Keys are scoped per account and kept for limits.IDEMPOTENCY_KEY_SECONDS.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from simhive.server.core import limits
from simhive.server.core.errors import GatewayError, InvalidInput
from simhive.server.store.base import StoreError
from simhive.server.store.idempotency_base import IdempotencyStore

KEY_REUSED = "Idempotency-Key was already used for a different request"
OUTCOME_UNKNOWN = (
    "Idempotency-Key belongs to a request that was interrupted by a server restart; its outcome "
    "is unknown (check getallsms before sending it again with a new key)"
)
INVALID_KEY = (
    f"Invalid Idempotency-Key: 1 to {limits.IDEMPOTENCY_KEY_MAX_CHARS} printable ASCII characters"
)
log = logging.getLogger("simhive.server")
_KEY_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))
US = 1_000_000


def check_key(key: str) -> str:
    if not 0 < len(key) <= limits.IDEMPOTENCY_KEY_MAX_CHARS or not _KEY_CHARS.issuperset(key):
        raise InvalidInput(INVALID_KEY)
    return key


def fingerprint(*parts: Any) -> str:
    """A digest of a request's meaning (route and parameters, credentials left out)."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class IdempotentRequests:
    def __init__(self, store: IdempotencyStore, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        # Requests running now, by (account, key): their fingerprint and their shared answer.
        self._running: dict[tuple[int, str], tuple[str, asyncio.Future[bytes]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(
        self, account_id: int, key: str, digest: str, work: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The answer of `work` for this key: run once, or the answer it gave before."""
        slot = (account_id, key)
        running = self._running.get(slot)
        if running is not None:
            if running[0] != digest:
                raise InvalidInput(KEY_REUSED, code="idempotency_conflict")
            return await asyncio.shield(running[1])
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._running[slot] = (digest, answer)
        task = asyncio.create_task(self._once(slot, digest, work, answer))
        self._tasks.add(task)  # a strong reference while it runs (asyncio keeps only weak ones)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(answer)

    async def _once(
        self,
        slot: tuple[int, str],
        digest: str,
        work: Callable[[], Awaitable[bytes]],
        answer: asyncio.Future[bytes],
    ) -> None:
        account_id, key = slot
        try:
            now = self.clock()
            expired = now - int(limits.IDEMPOTENCY_KEY_SECONDS * US)
            record = await self.store.claim_key(account_id, key, digest, now, expired)
            if record is None:
                answer.set_result(await self._first(account_id, key, work))
            elif record.fingerprint != digest:
                raise InvalidInput(KEY_REUSED, code="idempotency_conflict")
            elif record.answer is None:
                raise InvalidInput(OUTCOME_UNKNOWN, code="idempotency_conflict")
            else:
                answer.set_result(record.answer.encode("utf-8"))
        except BaseException as exc:
            if not answer.done():
                answer.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            del self._running[slot]
            if answer.done() and not answer.cancelled():
                answer.exception()  # retrieved: no "never retrieved" warning if all left

    async def _first(
        self, account_id: int, key: str, work: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        try:
            result = await work()
        except (GatewayError, StoreError):
            # Refused before writing, or the write was not committed: nothing is stored, so
            # the key is free for a retry. (Any other failure leaves the outcome unknown.)
            await self.store.release_key(account_id, key)
            raise
        try:
            await self.store.answer_key(account_id, key, result.decode("utf-8", "surrogatepass"))
        except StoreError as exc:
            # Stored, but not its answer: this client still gets it; a retry finds the key
            # without an answer and is refused as outcome unknown, never stored twice.
            log.error("could not record the answer of an Idempotency-Key: %s", exc)
        return result
