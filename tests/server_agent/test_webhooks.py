"""Webhooks end to end in process: agent reports and incoming SMS -> outbox -> a real receiver.

Outbox rows are written in the transaction of the change, so right after an agent call answers the
test can count rows exactly; delivery is asynchronous and awaited with generous timeouts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from simhive.server.core import webhooks
from tests.server_agent.conftest import SECRET, Env, Receiver, Servers, eventually

AT_SENT = "2026-11-22T04:34:05+00:00"
AT_DELIVERED = "2026-11-22T04:34:09+00:00"


def report_events(sms_id: int) -> list[dict[str, Any]]:
    return [
        {"event_id": f"{sms_id}:sent", "sms_id": sms_id, "type": "sent", "at": AT_SENT, "sim": 1,
         "parts": [{"index": 0, "reference": 17}, {"index": 1, "reference": 18}]},
        {"event_id": f"{sms_id}:delivered", "sms_id": sms_id, "type": "delivered",
         "at": AT_DELIVERED},
    ]  # fmt: skip


def incoming(key: str = "26201:+4917012345:2611220434050:3f2a") -> dict[str, Any]:
    return {"key": key, "sim": 1, "from": "+4917012345", "body": "Hallo Welt",
            "sent_at": "2026-11-22T04:34:00+00:00", "received_at": "2026-11-22T04:34:05+00:00",
            "parts": 1, "incomplete": False}  # fmt: skip


def _distinct(received: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for r in received:
        key = r.headers["X-Simhive-Event-Id"]
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def signature_ok(received: Any) -> bool:
    """Verify as a receiver would, written from docs/webhooks.md, not with the server's code."""
    ts = received.headers["X-Simhive-Timestamp"]
    expected = hmac.new(SECRET.encode(), ts.encode() + b"." + received.body, hashlib.sha256)
    return hmac.compare_digest(
        "v1=" + expected.hexdigest(), received.headers["X-Simhive-Signature"]
    )


async def lease_and_commit(env: Env) -> list[int]:
    lease = await env.agent("pull", {"wait": 0})
    ids = [m["id"] for m in lease["messages"]]
    answer = await env.agent("commit", {"lease_id": lease["lease_id"], "ids": ids})
    assert answer == {"committed": ids, "rejected": []}
    return ids


async def test_status_webhooks_follow_the_lifecycle_signed_and_once(
    env: Env, receiver: Receiver
) -> None:
    await env.set_webhooks(receiver)
    sms_id = await env.send(sim=1)
    seen = [await env.status(sms_id)]
    lease = await env.agent("pull", {"wait": 0})
    seen.append(await env.status(sms_id))
    await env.agent("commit", {"lease_id": lease["lease_id"], "ids": [sms_id]})
    seen.append(await env.status(sms_id))
    assert await env.webhooks() == []  # 2 and 3 are not announced: the webhook is about sending
    events = report_events(sms_id)
    for event in events:
        assert await env.agent("report", {"events": [event]}) == {"accepted": [event["event_id"]]}
        seen.append(await env.status(sms_id))
    assert seen == [1, 2, 3, 6, 7]
    rows = await env.webhooks()
    assert [(r["kind"], r["status"], r["event_key"]) for r in rows] == [
        ("status", 6, f"status:{sms_id}:6"), ("status", 7, f"status:{sms_id}:7")]  # fmt: skip

    # Delivery is at least once (docs/webhooks.md): under load a slow answer can cause a redelivery
    # with the same event id, which receivers deduplicate on; so compare distinct events.
    got = await eventually(
        lambda: _ready(_distinct(receiver.ok("/status")), 2), "two status webhooks delivered"
    )
    bodies = [json.loads(r.body) for r in got]
    assert [b["status_id"] for b in bodies] == [6, 7]
    assert bodies[1] == {
        "sms_id": sms_id, "status_id": 7, "status_message": "Delivered",
        "sendto": "+4915752982212", "senttime": "2026-11-22 04:34:05",
        "channel_id": 1, "sim": 1, "device_id": env.device_id,
    }  # fmt: skip
    for r, status in zip(got, (6, 7), strict=True):
        assert r.headers["X-Simhive-Event"] == "status"
        assert r.headers["X-Simhive-Event-Id"] == f"status:{sms_id}:{status}"
        assert r.headers["Content-Type"].startswith("application/json")
        assert signature_ok(r)
        assert webhooks.verify(
            SECRET, r.headers["X-Simhive-Timestamp"], r.body, r.headers["X-Simhive-Signature"]
        )
    # the same batch again (a lost answer) and a late `sent` announce nothing new
    await env.agent("report", {"events": events})
    late = {"event_id": f"{sms_id}:sent:again", "sms_id": sms_id, "type": "sent", "at": AT_SENT}
    await env.agent("report", {"events": [late]})
    assert len(await env.webhooks()) == 2
    delivered = await eventually(
        lambda: _all_state(env, "delivered", 2), "both outbox rows marked delivered"
    )
    assert all(r["attempts"] == 1 for r in delivered)


async def test_committed_message_failure_is_announced_with_its_status(
    env: Env, receiver: Receiver
) -> None:
    await env.set_webhooks(receiver)
    sms_id = await env.send()
    assert await lease_and_commit(env) == [sms_id]
    assert await env.status(sms_id) == 3
    failed = {"event_id": f"{sms_id}:failed", "sms_id": sms_id, "type": "failed", "at": AT_SENT,
              "status": 10, "code": "CMS 331", "reason": "no network service"}  # fmt: skip
    await env.agent("report", {"events": [failed]})
    [got] = await eventually(lambda: _ready(receiver.ok("/status"), 1), "failure webhook")
    body = json.loads(got.body)
    assert (body["status_id"], body["status_message"]) == (10, "Not sent - No service")
    assert body["senttime"] is None


async def test_incoming_webhook_once_per_key(env: Env, receiver: Receiver) -> None:
    await env.set_webhooks(receiver)
    first = await env.agent("incoming", {"messages": [incoming()]})
    again = await env.agent("incoming", {"messages": [incoming()]})
    sms_id = first["accepted"][0]["sms_id"]
    assert again["accepted"][0]["sms_id"] == sms_id
    rows = await env.webhooks()
    assert [(r["kind"], r["event_key"]) for r in rows] == [("incoming", f"incoming:{sms_id}")]
    [got] = await eventually(lambda: _ready(receiver.ok("/incoming"), 1), "incoming webhook")
    assert json.loads(got.body) == {
        "address": "+4917012345", "date": "2026-11-22 04:34:05",
        "date_sent": "2026-11-22 04:34:00", "body": "Hallo Welt", "internal_id": sms_id,
        "channel_id": 1, "sim": 1, "sms_id": sms_id, "device_id": env.device_id,
        "device_name": "box", "type": "text",
    }  # fmt: skip
    assert got.headers["X-Simhive-Event"] == "incoming"
    assert got.headers["X-Simhive-Event-Id"] == f"incoming:{sms_id}"
    assert signature_ok(got)
    listed = await env.compat("getallsms", status=5)
    assert listed["count"] == 1 and listed["smss"][str(sms_id)]["status"] == 5


async def test_failed_delivery_is_retried_with_the_same_event_id(
    env: Env, receiver: Receiver
) -> None:
    await env.set_webhooks(receiver)
    receiver.fail_next = 2
    answer = await env.agent("incoming", {"messages": [incoming()]})
    sms_id = answer["accepted"][0]["sms_id"]
    await eventually(lambda: _ready(receiver.ok(), 1), "delivery after two failures")
    assert receiver.answered == [503, 503, 200]
    assert {r.headers["X-Simhive-Event-Id"] for r in receiver.got} == {f"incoming:{sms_id}"}
    assert all(signature_ok(r) for r in receiver.got)
    [row] = await eventually(lambda: _all_state(env, "delivered", 1), "row marked delivered")
    assert row["attempts"] == 3 and row["last_error"] is None


async def test_a_message_s_webhooks_stay_in_order_across_retries(
    env: Env, receiver: Receiver
) -> None:
    await env.set_webhooks(receiver)
    sms_id = await env.send()
    await lease_and_commit(env)
    receiver.fail_next = 1  # the `sent` webhook fails once; `delivered` must wait for it
    await env.agent("report", {"events": report_events(sms_id)})
    await eventually(lambda: _ready(receiver.ok(), 2), "both webhooks")
    seen = [(json.loads(r.body)["status_id"], code)
            for r, code in zip(receiver.got, receiver.answered, strict=True)]  # fmt: skip
    assert seen == [(6, 503), (6, 200), (7, 200)]


async def test_webhook_is_given_up_after_max_attempts(env: Env, receiver: Receiver) -> None:
    await env.set_webhooks(receiver)
    receiver.always_fail = True
    await env.agent("incoming", {"messages": [incoming()]})
    [row] = await eventually(lambda: _all_state(env, "dead", 1), "row given up")
    assert row["attempts"] == 4 and row["last_error"] == "HTTP 503"
    assert len(receiver.got) == 4


async def test_pending_webhook_survives_a_server_restart(
    servers: Servers, env: Env, receiver: Receiver
) -> None:
    await env.set_webhooks(receiver)
    receiver.always_fail = True
    answer = await env.agent("incoming", {"messages": [incoming()]})
    sms_id = answer["accepted"][0]["sms_id"]
    await eventually(lambda: _ready(receiver.got, 1), "a failed first attempt")
    await servers.stop(env)
    assert not receiver.ok()
    receiver.always_fail = False
    again = await servers.start()
    [got] = await eventually(lambda: _ready(receiver.ok(), 1), "delivery after the restart")
    assert got.headers["X-Simhive-Event-Id"] == f"incoming:{sms_id}"
    await eventually(lambda: _all_state(again, "delivered", 1), "row delivered")


async def test_devices_without_webhooks_write_no_outbox_rows(env: Env, receiver: Receiver) -> None:
    await env.set_webhooks(receiver, device_id=env.other_device_id)
    await env.agent("incoming", {"messages": [incoming()]})  # env.device_id: no URLs
    sms_id = await env.send()
    await lease_and_commit(env)
    await env.agent("report", {"events": report_events(sms_id)})
    assert await env.webhooks() == []
    # the other device's URLs are its own: its incoming SMS goes out
    await env.agent("incoming", {"messages": [incoming("k2")]}, token=env.other_token)
    rows = await env.webhooks()
    assert [(r["device_id"], r["kind"]) for r in rows] == [(env.other_device_id, "incoming")]


async def test_unsigned_when_the_device_has_no_secret(env: Env, receiver: Receiver) -> None:
    await env.gw.store.update_device_settings(
        env.device_id, {"webhook_incoming": receiver.url("/incoming")}
    )
    await env.agent("incoming", {"messages": [incoming()]})
    [got] = await eventually(lambda: _ready(receiver.ok(), 1), "unsigned webhook")
    assert "X-Simhive-Signature" not in got.headers
    assert got.headers["X-Simhive-Timestamp"].isdigit()


async def _ready(items: list[Any], n: int) -> list[Any] | None:
    return list(items) if len(items) >= n else None


async def _all_state(env: Env, state: str, n: int) -> list[dict[str, object]] | None:
    rows = await env.webhooks()
    return rows if len(rows) == n and all(r["state"] == state for r in rows) else None


async def test_webhook_dates_are_in_the_account_zone(env: Env, receiver: Receiver) -> None:
    account, _ = await env.gw.create_account("berlin@example.com", "password123", "Europe/Berlin")
    device, token = await env.gw.create_device(account, "Berlin box")
    await env.set_webhooks(receiver, device_id=device.id)
    await env.agent("incoming", {"messages": [incoming()]}, token=token)
    [got] = await eventually(lambda: _ready(receiver.ok("/incoming"), 1), "incoming webhook")
    body = json.loads(got.body)
    # 04:34:05 UTC is 05:34:05 in Berlin in November (CET, +01:00)
    assert (body["date"], body["date_sent"]) == ("2026-11-22 05:34:05", "2026-11-22 05:34:00")
    assert body["device_id"] == device.id and body["device_name"] == "Berlin box"
