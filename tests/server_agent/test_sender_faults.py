"""The webhook sender under its own faults, over a fake outbox: a store that cannot record an
attempt, and a row the sender cannot even render, must neither stop the sender nor make it POST
the same row in a tight loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from simhive.server.core.models import Message
from simhive.server.core.webhooks import WAKE_COALESCE_SECONDS, RetryPolicy, WebhookSender
from simhive.server.store.agent_base import (
    AgentExtrasStore,
    DeviceAgentSettings,
    DeviceEvent,
    WebhookJob,
)
from simhive.server.store.base import StoreError


def _job(job_id: int, message: Any) -> WebhookJob:
    return WebhookJob(id=job_id, device_id=1, kind="status", event_key=f"status:{job_id}:6",
                      url="http://127.0.0.1:9/hook", status=6, attempts=0, secret=None,
                      message=message, device_title="box", timezone="UTC",
                      sent_at=None)  # fmt: skip


MESSAGE = Message(id=5, account_id=1, device_id=1, direction="out", sendto="+4915752982212",
                  body="hi", sim=0, status=6, urgent=False, customerid=None, created=0,
                  timetosend=None, senttime=None, delivered_time=None, paket_id=None,
                  paket_title=None, paket_body=None)  # fmt: skip


class FakeOutbox(AgentExtrasStore):
    """Rows stay due until recorded; recording can be made to fail."""

    def __init__(self, jobs: list[WebhookJob], *, writes_fail: bool = False) -> None:
        self.jobs = {j.id: j for j in jobs}
        self.writes_fail = writes_fail
        self.failed: list[tuple[int, str, int | None]] = []

    async def due_webhooks(self, now: int, limit: int) -> list[WebhookJob]:
        return list(self.jobs.values())[:limit]

    async def next_webhook_time(self) -> int | None:
        return 0 if self.jobs else None

    async def webhook_delivered(self, job_id: int, now: int) -> None:
        if self.writes_fail:
            raise StoreError("disk full")
        self.jobs.pop(job_id, None)

    async def webhook_failed(
        self, job_id: int, error: str, next_attempt: int | None, now: int
    ) -> None:
        if self.writes_fail:
            raise StoreError("disk full")
        self.failed.append((job_id, error, next_attempt))
        self.jobs.pop(job_id, None)  # not due again before next_attempt (far in this test)

    async def prune_webhooks(self, before: int) -> int:
        return 0

    async def webhook_rows(self, device_id: int | None = None) -> list[dict[str, object]]:
        return []

    async def expire_leases(self, now: int) -> set[int]:
        return set()

    async def device_agent_settings(self, device_id: int) -> DeviceAgentSettings | None:
        return None

    async def update_device_settings(self, device_id: int, values: dict[str, object]) -> None:
        return None

    async def add_device_events(
        self, device_id: int, events: Sequence[DeviceEvent], now: int
    ) -> None:
        return None

    async def device_events(self, device_id: int, limit: int = 100) -> list[DeviceEvent]:
        return []


async def _run_for(sender: WebhookSender, seconds: float) -> None:
    task = asyncio.create_task(sender.run())
    await asyncio.sleep(seconds)  # a window to count attempts in, not a synchronisation
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_unrecordable_attempts_are_not_repeated_in_a_loop() -> None:
    posts: list[str] = []

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        posts.append(headers["X-Simhive-Event-Id"])
        return 200

    outbox = FakeOutbox([_job(1, MESSAGE)], writes_fail=True)
    sender = WebhookSender(outbox, post, idle_poll_seconds=0.05)
    await _run_for(sender, 0.5)
    assert posts == ["status:1:6"]  # once, then held back in memory; not hundreds of times


async def test_a_row_that_cannot_be_rendered_is_failed_and_others_still_go() -> None:
    posts: list[str] = []

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        posts.append(headers["X-Simhive-Event-Id"])
        return 200

    outbox = FakeOutbox([_job(1, None), _job(2, MESSAGE)])  # row 1 has no message to render
    sender = WebhookSender(outbox, post, idle_poll_seconds=0.05, policy=RetryPolicy())
    await _run_for(sender, 0.5)
    assert posts == ["status:2:6"]
    [(job_id, error, next_attempt)] = outbox.failed
    assert job_id == 1 and "internal error" in error and next_attempt is not None


class CountingOutbox(FakeOutbox):
    """Counts the sender's looks for due rows."""

    def __init__(self) -> None:
        super().__init__([])
        self.looks = 0

    async def due_webhooks(self, now: int, limit: int) -> list[WebhookJob]:
        self.looks += 1
        return await super().due_webhooks(now, limit)


async def test_agent_requests_in_a_burst_cost_one_look_and_their_rows_still_go_at_once() -> None:
    posts: list[str] = []

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        posts.append(headers["X-Simhive-Event-Id"])
        return 200

    outbox = CountingOutbox()
    sender = WebhookSender(outbox, post, idle_poll_seconds=60)
    task = asyncio.create_task(sender.run())
    try:
        await asyncio.sleep(0.05)  # the first look, at start; then idle for a minute
        assert outbox.looks == 1
        outbox.jobs[1] = _job(1, MESSAGE)  # written by the burst's first request
        for _ in range(300):  # a busy agent's requests within a few milliseconds
            sender.wake_soon()
            await asyncio.sleep(0)
        await asyncio.sleep(WAKE_COALESCE_SECONDS * 4)
        assert posts == ["status:1:6"]
        # One look for the burst (and at most one more after the delivery ended), not 300.
        assert outbox.looks <= 3, outbox.looks
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
