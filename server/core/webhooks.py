"""Webhooks: payloads (docs/webhooks.md), signatures, and the outbox delivery loop.

The store writes one outbox row per status change and per incoming SMS in the transaction of the
change itself (sqlite_schema.py migration 3); this module turns due rows into signed POSTs and
records each attempt. Delivery is at least once: a receiver deduplicates on the
`X-Simhive-Event-Id` header, which is stable across retries and restarts. The HTTP client is
injected (`Post`), so this module stays free of aiohttp.

Signature: `X-Simhive-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>` with
`X-Simhive-Timestamp: <unix seconds>`; docs/webhooks.md shows how to verify it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from simhive.server.core.dates import US, from_us, now_us, resolve_zone
from simhive.server.core.errors import InvalidInput
from simhive.server.core.status import label
from simhive.server.store.agent_base import AgentExtrasStore, WebhookJob
from simhive.server.store.base import StoreError

log = logging.getLogger("simhive.webhooks")

HEADER_EVENT = "X-Simhive-Event"
HEADER_EVENT_ID = "X-Simhive-Event-Id"
HEADER_TIMESTAMP = "X-Simhive-Timestamp"
HEADER_SIGNATURE = "X-Simhive-Signature"
USER_AGENT = "simhive-webhooks/1"
MAX_URL_CHARS = 2000
# Delivered and given-up outbox rows are kept this long (for `device webhooks`), then forgotten.
KEEP_SECONDS = 30 * 86_400
PRUNE_EVERY_SECONDS = 3600
# A row whose attempt could not be recorded (store failing) waits this long in memory.
STORE_RETRY_SECONDS = 30

# (url, body, headers) -> HTTP status; raises OSError/TimeoutError (or the client's own error
# types, wrapped by the caller) when no answer came.
Post = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


class WebhookTransportError(Exception):
    """The receiver could not be reached or did not answer in time."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off: first retry after `base_seconds`, doubling up to `max_seconds`,
    +-`jitter` spread so that many failed rows do not retry in lockstep; a row is given up
    (state 'dead') after `max_attempts` attempts. Defaults: about 2 days of retries."""

    base_seconds: float = 10.0
    max_seconds: float = 3600.0
    max_attempts: int = 60
    jitter: float = 0.2

    def delay(self, attempts: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after the `attempts`-th failed attempt (1-based)."""
        raw = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, attempts - 1))
        return raw * (1 + self.jitter * (2 * rand() - 1))


def validate_url(url: str) -> str:
    """A webhook URL must be absolute http(s); an empty string clears the webhook."""
    url = url.strip()
    if url == "":
        return url
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"Webhook URL too long (at most {MAX_URL_CHARS} characters)")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise InvalidInput(f"Webhook URL must start with http:// or https:// and a host: {url}")
    return url


def _local(value_us: int | None, timezone: str) -> str | None:
    """`YYYY-MM-DD HH:MM:SS` in the account's zone (docs/webhooks.md)."""
    if value_us is None:
        return None
    try:
        zone = resolve_zone(timezone)
    except InvalidInput:
        zone = resolve_zone("UTC")
    return from_us(value_us).astimezone(zone.tz).strftime("%Y-%m-%d %H:%M:%S")


def payload(job: WebhookJob) -> dict[str, Any]:
    """The vendor's webhook body; `channel_id` and `sim` both carry the 0-based slot because
    older and newer vendor docs each name it differently."""
    m = job.message
    if job.kind == "incoming":
        return {
            "address": m.sendto,
            "date": _local(m.created, job.timezone),
            "date_sent": _local(job.sent_at, job.timezone),
            "body": m.body,
            # The agent protocol carries no modem storage index; simhive's own id stands in.
            "internal_id": m.id,
            "channel_id": m.sim,
            "sim": m.sim,
            "sms_id": m.id,
            "device_id": m.device_id,
            "device_name": job.device_title,
            "type": "text",
        }
    return {
        "sms_id": m.id,
        "status_id": job.status,
        "status_message": label(job.status),
        "sendto": m.sendto,
        "senttime": _local(m.senttime, job.timezone),
        "channel_id": m.sim,
        "sim": m.sim,
        "device_id": m.device_id,
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Receiver side (also the docs' example): constant-time check of a signature header."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


def request_for(job: WebhookJob, now: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload(job), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    timestamp = now // US
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        HEADER_EVENT: job.kind,
        HEADER_EVENT_ID: job.event_key,
        HEADER_TIMESTAMP: str(timestamp),
    }
    if job.secret:
        headers[HEADER_SIGNATURE] = sign(job.secret, timestamp, body)
    return body, headers


# How long after an agent request the sender looks for rows it wrote (wake_soon).
WAKE_COALESCE_SECONDS = 0.05


class WebhookSender:
    """Delivers due outbox rows; `run()` until cancelled. `wake()` after a change that may have
    written rows (the app calls it after every agent request); an idle poll catches rows written
    by other processes."""

    def __init__(
        self,
        store: AgentExtrasStore,
        post: Post,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], int] = now_us,
        concurrency: int = 16,
        idle_poll_seconds: float = 5.0,
        keep_seconds: float = KEEP_SECONDS,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.post = post
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.concurrency = concurrency
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._cooldown: dict[int, int] = {}  # job id -> not before (an attempt not recorded)
        # Rows whose attempt ended while due rows were being read: that read may predate the
        # attempt's record (a store whose reads and writes run side by side, PostgreSQL), so it
        # must not start them again.
        self._ended_meanwhile: set[int] = set()
        self.idle_poll_seconds = idle_poll_seconds
        self.rand = rand
        self.keep_seconds = keep_seconds
        self._next_prune = 0
        self._wake = asyncio.Event()
        self._soon: asyncio.TimerHandle | None = None
        self.delivered = 0
        self.failed_attempts = 0

    def wake(self) -> None:
        self._wake.set()

    def wake_soon(self) -> None:
        """After an agent request, which may have written outbox rows: look for them within
        WAKE_COALESCE_SECONDS, once for every request in that time. A busy agent makes hundreds
        of requests a second and a look costs two queries, most of them finding nothing."""
        if self._soon is None:
            loop = asyncio.get_running_loop()
            self._soon = loop.call_later(WAKE_COALESCE_SECONDS, self._wake_soon_now)

    def _wake_soon_now(self) -> None:
        self._soon = None
        self._wake.set()

    async def run(self) -> None:
        """Start a delivery task per due row, up to `concurrency` at once, so one slow or dead
        receiver never holds the others' webhooks; returns only when cancelled."""
        try:
            while True:
                try:
                    await self._prune()
                    await self._start_due()
                except StoreError as exc:
                    log.error("webhook outbox unavailable: %s", exc)
                await self._idle()
        finally:
            if self._soon is not None:
                self._soon.cancel()
                self._soon = None
            for task in list(self._tasks.values()):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _start_due(self) -> None:
        room = self.concurrency - len(self._tasks)
        if room <= 0:
            return
        now = self.clock()
        self._cooldown = {k: t for k, t in self._cooldown.items() if t > now}
        busy = len(self._tasks) + len(self._cooldown)
        self._ended_meanwhile.clear()
        jobs = await self.store.due_webhooks(now, room + busy)
        skip = self._tasks.keys() | self._cooldown.keys() | self._ended_meanwhile
        ready = [j for j in jobs if j.id not in skip]
        for job in ready[:room]:
            task = asyncio.create_task(self._attempt(job), name=f"webhook-{job.id}")
            self._tasks[job.id] = task
            task.add_done_callback(functools.partial(self._done, job.id))

    def _done(self, job_id: int, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(job_id, None)
        self._ended_meanwhile.add(job_id)
        self._wake.set()  # room for the next row, and maybe this message's next webhook

    async def _prune(self) -> None:
        now = self.clock()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY_SECONDS * US
        gone = await self.store.prune_webhooks(now - int(self.keep_seconds * US))
        if gone:
            log.info("forgot %d delivered or given-up webhooks older than %.0f days", gone,
                     self.keep_seconds / 86_400)  # fmt: skip

    async def _idle(self) -> None:
        timeout = self.idle_poll_seconds
        with contextlib.suppress(StoreError):
            nxt = await self.store.next_webhook_time()
            if nxt is not None:
                timeout = min(timeout, max(0.0, (nxt - self.clock()) / US))
        if timeout < 0.05:
            # Due rows now are in flight (their task wakes us when done) or were written after
            # the last look (the request that wrote them wakes us); else a short floor, not a
            # tight loop.
            timeout = self.idle_poll_seconds if self._tasks or self._cooldown else 0.05
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that lands as
        # the event fires, and the app's shutdown then waits for this task forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        self._wake.clear()

    async def _attempt(self, job: WebhookJob) -> None:
        try:
            await self._deliver(job)
        except StoreError as exc:
            # The outcome is not recorded, so the row still looks due: hold it back in memory,
            # or a store that reads but cannot write would have us POST it in a tight loop.
            log.error("webhook %s: could not record the attempt: %s", job.event_key, exc)
            self._cooldown[job.id] = self.clock() + int(STORE_RETRY_SECONDS * US)
        except Exception:  # a bug here must cost one row an attempt, not stop all webhooks
            log.exception("webhook %s: unexpected failure", job.event_key)
            self._cooldown[job.id] = self.clock() + int(STORE_RETRY_SECONDS * US)
            with contextlib.suppress(StoreError):
                await self._failed(job, "internal error in the webhook sender")

    async def _deliver(self, job: WebhookJob) -> None:
        now = self.clock()
        body, headers = request_for(job, now)
        try:
            status = await self.post(job.url, body, headers)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:  # any failure of one POST is that attempt's failure
            # A URL may carry the receiver's own token in its query: never in a log line.
            error = f"{type(exc).__name__}: {exc}".replace(job.url, "<webhook url>")[:300]
        if error is None:
            self.delivered += 1
            await self.store.webhook_delivered(job.id, self.clock())
            return
        await self._failed(job, error)

    async def _failed(self, job: WebhookJob, error: str) -> None:
        self.failed_attempts += 1
        attempts = job.attempts + 1
        if attempts >= self.policy.max_attempts:
            log.warning("webhook %s to device %d's URL given up after %d attempts: %s",
                        job.event_key, job.device_id, attempts, error)  # fmt: skip
            await self.store.webhook_failed(job.id, error, None, self.clock())
            return
        delay = self.policy.delay(attempts, self.rand)
        log.info("webhook %s failed (%s); retry %d in %.1f s", job.event_key, error, attempts,
                 delay)  # fmt: skip
        await self.store.webhook_failed(job.id, error, self.clock() + int(delay * US), self.clock())
