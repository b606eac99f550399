"""Account webhooks of the native API: one URL per kind for the whole account (message status,
incoming SMS, device status), signed with the account's secret and delivered from a durable
outbox, like the device webhooks of docs/webhooks.md (same headers, same signature, at least once,
retried with back-off, in order per message).

The outbox rows of messages are written by triggers in the transaction of the change (migration
"account webhooks"); those of device status by the device watcher (device_watch.py). Bodies use
the native API's names: `{"event": "message.status", ...}`, `"incoming.sms"`, `"device.status"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simhive.server.core.dates import US, iso, now_us
from simhive.server.core.keys import Caller
from simhive.server.core.status import name as status_name
from simhive.server.core.webhooks import (
    HEADER_EVENT,
    HEADER_EVENT_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    KEEP_SECONDS,
    PRUNE_EVERY_SECONDS,
    USER_AGENT,
    Post,
    RetryPolicy,
    WebhookTransportError,
    sign,
    validate_url,
)
from simhive.server.store.account_webhooks_base import AccountHooks, AccountJob
from simhive.server.store.base import Store, StoreError

log = logging.getLogger("simhive.webhooks")
EVENTS = {"status": "message.status", "incoming": "incoming.sms", "device": "device.status"}


@dataclass(frozen=True, slots=True)
class HooksView:
    hooks: AccountHooks | None
    new_secret: str | None = None  # made by this change: shown once


class AccountWebhooks:
    """Reading and setting the URLs (`admin` scope)."""

    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock

    async def get(self, caller: Caller) -> HooksView:
        caller.require("admin")
        return HooksView(await self.store.account_webhooks(caller.account.id))

    async def set(self, caller: Caller, urls: dict[str, str | None], new_secret: bool
                  ) -> HooksView:  # fmt: skip
        """`urls`: kind -> URL ("" or None removes it); kinds not given stay as they are."""
        caller.require("admin")
        current = await self.store.account_webhooks(caller.account.id) or AccountHooks(
            None, None, None, None
        )
        values = {"status": current.status, "incoming": current.incoming,
                  "device": current.device}  # fmt: skip
        for kind, url in urls.items():
            values[kind] = validate_url(url or "") or None
        secret, shown = current.secret, None
        if new_secret or (secret is None and any(values.values())):
            secret = shown = secrets.token_hex(32)
        hooks = AccountHooks(values["status"], values["incoming"], values["device"], secret)
        await self.store.set_account_webhooks(caller.account.id, hooks, self.clock())
        return HooksView(hooks, shown)


async def body_of(store: Store, job: AccountJob) -> dict[str, Any] | None:
    """The JSON body of a row; None if its message is gone."""
    if job.body is not None:
        loaded: dict[str, Any] = json.loads(job.body)
        return loaded
    assert job.sms_id is not None
    m = await store.message_by_id(job.account_id, job.sms_id)
    if m is None:
        return None
    if job.kind == "incoming":
        return {"event": EVENTS["incoming"], "id": m.id, "from": m.sendto, "text": m.body,
                "device_id": m.device_id, "sim": m.sim,
                "received_at": iso(m.created)}  # fmt: skip
    status = int(job.status or m.status)
    return {"event": EVENTS["status"], "id": m.id, "to": m.sendto, "status": status,
            "status_name": status_name(status), "device_id": m.device_id, "sim": m.sim,
            "customer_id": m.customerid, "sent_at": iso(m.senttime),
            "delivered_at": iso(m.delivered_time), "error_code": m.failure_code}  # fmt: skip


class AccountWebhookSender:
    """Delivers due account outbox rows; `run()` until cancelled, `wake()` after a change."""

    def __init__(
        self,
        store: Store,
        post: Post,
        *,
        policy: RetryPolicy | None = None,
        interval_seconds: float = 1.0,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.post = post
        self.policy = policy or RetryPolicy()
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._wake = asyncio.Event()
        self._pruned = 0

    def wake(self) -> None:
        self._wake.set()

    async def prune(self) -> int:
        """Forget rows delivered or given up more than KEEP_SECONDS ago (as device webhooks)."""
        self._pruned = self.clock()
        return await self.store.prune_account_webhooks(self._pruned - KEEP_SECONDS * US)

    async def tick(self) -> int:
        """Attempt the due rows; a delivery makes the next row of its message due, so go round
        again while rows get delivered. Returns how many were delivered."""
        delivered = 0
        while True:
            done = 0
            for job in await self.store.due_account_webhooks(self.clock(), 100):
                done += await self._attempt(job)
            delivered += done
            if not done:
                return delivered

    async def _attempt(self, job: AccountJob) -> int:
        body = await body_of(self.store, job)
        if body is None:
            await self.store.account_webhook_failed(job.id, "message gone", None, self.clock())
            return 0
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = self.clock() // US
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
                   HEADER_EVENT: EVENTS[job.kind], HEADER_EVENT_ID: job.event_key,
                   HEADER_TIMESTAMP: str(timestamp)}  # fmt: skip
        if job.secret:
            headers[HEADER_SIGNATURE] = sign(job.secret, timestamp, raw)
        try:
            status = await self.post(job.url, raw, headers)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except (WebhookTransportError, OSError, TimeoutError) as exc:
            error = str(exc) or type(exc).__name__
        now = self.clock()
        if error is None:
            await self.store.account_webhook_done(job.id, now)
            return 1
        attempts = job.attempts + 1
        later = None
        if attempts < self.policy.max_attempts:
            later = now + int(self.policy.delay(attempts) * US)
        await self.store.account_webhook_failed(job.id, error, later, now)
        return 0

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                if self.clock() - self._pruned >= PRUNE_EVERY_SECONDS * US:
                    await self.prune()
            except StoreError as exc:
                log.error("account webhooks: %s", exc)
            except Exception:  # a bug must not end deliveries for the life of the server
                log.exception("account webhooks failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_seconds)
