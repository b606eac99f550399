"""Account webhooks: message status, incoming SMS and device status (connect and disconnect with
a reason), written durably with the change and delivered signed, retried after a failure."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from simhive.server.api.v1.webhook_job import ACCOUNT_HOOKS, AccountHookJobs
from simhive.server.core.models import IncomingMessage, ReportEvent
from simhive.server.core.webhooks import KEEP_SECONDS, verify
from tests.server._v1 import NUMBER, V1

US = 1_000_000


@dataclass
class Receiver:
    url: str = ""
    got: list[tuple[dict[str, str], dict[str, Any], bytes]] = field(default_factory=list)
    fail_next: int = 0

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Bodies of one event kind, each event id once (delivery is at least once)."""
        seen: dict[str, dict[str, Any]] = {}
        for headers, body, _ in self.got:
            if body["event"] == kind:
                seen.setdefault(headers["X-Simhive-Event-Id"], body)
        return list(seen.values())


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        if rec.fail_next:
            rec.fail_next -= 1
            return web.Response(status=500)
        rec.got.append((dict(request.headers), json.loads(raw), raw))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app)
    await server.start_server()
    rec.url = str(server.make_url("/hook"))
    yield rec
    await server.close()


def jobs(v1: V1) -> AccountHookJobs:
    app = v1.client.app
    assert app is not None
    found: AccountHookJobs = app[ACCOUNT_HOOKS]
    assert found.sender is not None and found.watch is not None
    return found


async def hooked(v1: V1, receiver: Receiver) -> str:
    got = await v1.ok("PUT", "/webhooks", key="admin", json={
        "status": receiver.url, "incoming": receiver.url, "device": receiver.url})  # fmt: skip
    assert got["secret_set"] and len(got["secret"]) == 64
    again = await v1.ok("GET", "/webhooks", key="admin")
    assert again["secret"] is None and again["status"] == receiver.url  # shown once
    secret: str = got["secret"]
    return secret


async def test_status_and_incoming_are_written_with_the_change_and_signed(
    v1: V1, receiver: Receiver
) -> None:
    secret = await hooked(v1, receiver)
    sms_id = (await v1.send(device_id=v1.device.id))["messages"][0]["id"]
    store, now = v1.gateway.store, v1.gateway.clock()
    await store.lease_due(v1.device.id, 10, "l", now, now + 60 * US)
    await store.commit_lease(v1.device.id, "l", [sms_id], now)
    await store.apply_events(v1.device.id, [ReportEvent("s", sms_id, "sent", now),
                                            ReportEvent("d", sms_id, "delivered", now + 1)],
                             now + 2)  # fmt: skip
    await store.store_incoming(v1.account.id, v1.device.id,
                               [IncomingMessage("k1", 0, NUMBER, "hello")], now)  # fmt: skip
    # durable: the rows exist before anything was delivered (written by the change itself)
    kinds = [r["kind"] for r in await store.account_webhook_rows(v1.account.id)]
    assert kinds.count("status") == 2 and kinds.count("incoming") == 1
    await jobs(v1).sender.tick()  # type: ignore[union-attr]
    statuses = receiver.events("message.status")
    assert [(b["id"], b["status"], b["status_name"]) for b in statuses] == [
        (sms_id, 6, "sent"), (sms_id, 7, "delivered")]  # fmt: skip
    [incoming] = receiver.events("incoming.sms")
    assert (incoming["from"], incoming["text"]) == (NUMBER, "hello")
    for headers, _, raw in receiver.got:
        assert verify(secret, headers["X-Simhive-Timestamp"], raw,
                      headers["X-Simhive-Signature"])  # fmt: skip
    assert all(r["state"] == "delivered" for r in await store.account_webhook_rows(v1.account.id))
    # another account's messages never reach this account's URL
    other = await v1.call("POST", "/messages", key=v1.other_key,
                          json={"to": [NUMBER], "text": "theirs"})  # fmt: skip
    assert other[0] == 200
    assert len(await store.account_webhook_rows(v1.account.id)) == 3


async def test_a_failed_delivery_is_retried_later(v1: V1, receiver: Receiver) -> None:
    await hooked(v1, receiver)
    sms_id = (await v1.send(device_id=v1.device.id))["messages"][0]["id"]
    await v1.ok("POST", f"/messages/{sms_id}/cancel", key="send")  # status 20 is announced too
    sender = jobs(v1).sender
    assert sender is not None
    receiver.fail_next = 1_000
    await sender.tick()
    [row] = await v1.gateway.store.account_webhook_rows(v1.account.id)
    assert (row["state"], row["attempts"], row["last_error"]) == ("pending", 1, "HTTP 500")
    receiver.fail_next = 0
    real = sender.clock
    sender.clock = lambda: real() + 3600 * US  # past the back-off
    try:
        await sender.tick()
    finally:
        sender.clock = real
    [body] = receiver.events("message.status")
    assert (body["id"], body["status"], body["status_name"]) == (sms_id, 20, "cancelled")
    [row] = await v1.gateway.store.account_webhook_rows(v1.account.id)
    assert row["state"] == "delivered" and row["attempts"] == 2
    assert await sender.prune() == 0  # delivered just now: kept for inspection
    sender.clock = lambda: real() + (KEEP_SECONDS + 1) * US
    try:
        assert await sender.prune() == 1
    finally:
        sender.clock = real
    assert await v1.gateway.store.account_webhook_rows(v1.account.id) == []


async def test_device_connect_and_disconnect_with_a_reason(v1: V1, receiver: Receiver) -> None:
    await hooked(v1, receiver)
    watch, sender = jobs(v1).watch, jobs(v1).sender
    assert watch is not None and sender is not None
    await watch.tick()  # never seen: remembered, nothing announced
    hello = await v1.client.post(
        "/agent/v1/hello",
        json={"agent_version": "t", "sims": []},
        headers={"Authorization": f"Bearer {v1.device_token}"},
    )
    assert hello.status == 200
    await watch.tick()  # (the server's own watch may have been first: the same announcement)
    await watch.tick()
    # the agent goes quiet: its last request is older than the offline time
    quiet = v1.gateway.clock() - int((watch.offline_seconds + 30) * US)
    await v1.gateway.store.touch_device(v1.device.id, quiet)
    await watch.tick()
    await sender.tick()
    events = receiver.events("device.status")
    assert [(e["device_id"], e["status"]) for e in events] == [
        (v1.device.id, "connect"), (v1.device.id, "disconnect")]  # fmt: skip
    assert events[0]["device"] == "hall"
    assert "no request from the agent for" in events[1]["reason"]


async def test_urls_are_checked_and_removed(v1: V1, receiver: Receiver) -> None:
    await v1.err("PUT", "/webhooks", "invalid_input", key="admin", json={"status": "ftp://x"})
    await v1.err("PUT", "/webhooks", "scope_denied", key="devices", json={"status": receiver.url})
    await hooked(v1, receiver)
    gone = await v1.ok("PUT", "/webhooks", key="admin", json={"status": "", "incoming": None})
    assert (gone["status"], gone["incoming"], gone["device"]) == (None, None, receiver.url)
    await v1.send(device_id=v1.device.id)
    assert await v1.gateway.store.account_webhook_rows(v1.account.id) == []
    new = await v1.ok("PUT", "/webhooks", key="admin", json={"new_secret": True})
    assert new["secret"] is not None and len(new["secret"]) == 64
