"""The webhook sender over a store whose reads run beside its writes (PostgreSQL): a read of due
rows that began before a delivery was recorded and ended after must not start that row again.
Found by the three-server test (tests/e2e/test_cluster.py), pinned here over a fake outbox."""

from __future__ import annotations

import asyncio

from simhive.server.core.webhooks import WebhookSender
from simhive.server.store.agent_base import WebhookJob
from tests.server_agent.test_sender_faults import MESSAGE, FakeOutbox, _job, _run_for


class StaleOutbox(FakeOutbox):
    """Its second read of due rows sees the outbox as it was before the first delivery was
    recorded (the read's snapshot), and answers only after that record."""

    def __init__(self, jobs: list[WebhookJob]) -> None:
        super().__init__(jobs)
        self.reads = 0
        self.reading = asyncio.Event()
        self.recorded = asyncio.Event()

    async def due_webhooks(self, now: int, limit: int) -> list[WebhookJob]:
        snapshot = list(self.jobs.values())[:limit]
        self.reads += 1
        if self.reads == 2:
            self.reading.set()
            await self.recorded.wait()
            for _ in range(3):  # the finished delivery's task and callbacks run meanwhile
                await asyncio.sleep(0)
        return snapshot

    async def webhook_delivered(self, job_id: int, now: int) -> None:
        await super().webhook_delivered(job_id, now)
        self.recorded.set()


async def test_a_stale_read_does_not_send_a_delivered_row_again() -> None:
    posts: list[str] = []
    outbox = StaleOutbox([_job(1, MESSAGE)])

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        await outbox.reading.wait()  # delivered while the second read is under way
        posts.append(headers["X-Simhive-Event-Id"])
        return 200

    sender = WebhookSender(outbox, post, idle_poll_seconds=0.05)
    await _run_for(sender, 0.5)
    assert outbox.reads >= 2
    assert posts == ["status:1:6"]
