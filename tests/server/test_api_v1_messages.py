"""POST/GET /api/v1/messages and friends: per-recipient answers, targets, schedules, status
history through the agent protocol's own store calls, cancel, validity, paging, incoming."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from simhive.server.api.compat import GATEWAY
from simhive.server.api.v1.http import EXPIRY
from simhive.server.core.models import IncomingMessage, ReportEvent
from simhive.server.core.status import Status
from tests.server._v1 import NUMBER, V1

US = 1_000_000


def rows(v1: V1, sql: str = "SELECT COUNT(*) FROM messages") -> Any:
    path = v1.gateway.store.path  # type: ignore[attr-defined]
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchone()[0]


async def test_bulk_send_answers_each_recipient_in_order(v1: V1) -> None:
    to = [NUMBER, "not a number", "0049 157 52982213", "+1"]
    text = "Grüße ✓ " * 9  # UCS-2 (the check mark), 72 characters: two parts of 67
    sent = await v1.send(to=to, text=text)
    assert (sent["accepted"], sent["rejected"]) == (2, 2)
    assert (sent["encoding"], sent["parts"]) == ("ucs2", 2)
    answers = sent["messages"]
    assert [a["to"] for a in answers] == to
    assert answers[0]["number"] == NUMBER and answers[2]["number"] == "+4915752982213"
    assert answers[1]["id"] is None and answers[1]["error"]["code"] == "invalid_numbers"
    assert "Invalid phone number" in answers[1]["error"]["message"]
    assert answers[3]["error"]["code"] == "invalid_numbers"
    ids = [a["id"] for a in answers if a["id"] is not None]
    assert len(set(ids)) == 2 and rows(v1) == 2
    for sms_id, number in zip(ids, (NUMBER, "+4915752982213"), strict=True):
        got = await v1.ok("GET", f"/messages/{sms_id}", key="read")
        assert (got["to"], got["text"], got["encoding"], got["parts"]) == (number, text, "ucs2", 2)
        # No target named: the account's pool `all`, bound to a SIM only when one asks.
        assert (got["pool"], got["device_id"], got["sim"]) == ("all", None, None)


async def test_a_request_with_a_bad_number_is_refused_whole_when_asked(v1: V1) -> None:
    body = {"to": [NUMBER, "junk"], "text": "x", "all_or_nothing": True}
    error = await v1.err("POST", "/messages", "invalid_numbers", key="send", json=body)
    assert error["details"]["rejected"][0]["to"] == "junk"
    await v1.err("POST", "/messages", "invalid_numbers", key="send",
                 json={"to": ["junk", "+0"], "text": "x"})  # fmt: skip
    assert rows(v1) == 0


async def test_recipient_limit_is_10000(v1: V1) -> None:
    numbers = [f"+49157{i:08d}" for i in range(10_001)]
    error = await v1.err("POST", "/messages", "too_many_numbers", key="send",
                         json={"to": numbers, "text": "x"})  # fmt: skip
    assert error["details"]["field"] == "to"
    assert rows(v1) == 0
    sent = await v1.send(to=numbers[:10_000], text="bulk")
    assert sent["accepted"] == 10_000 and rows(v1) == 10_000
    ids = [m["id"] for m in sent["messages"]]
    assert ids == sorted(ids) and len(set(ids)) == 10_000


async def test_pinned_sim_schedule_priority_and_the_compat_view(v1: V1) -> None:
    when = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    local = when.astimezone(timezone(timedelta(hours=1))).isoformat()  # e.g. ...T09:00:00+01:00
    sent = await v1.send(device_id=v1.device.id, sim=1, send_at=local, priority="high",
                         customer_id=77)  # fmt: skip
    assert sent["send_at"] == when.isoformat()
    sms_id = sent["messages"][0]["id"]
    got = await v1.ok("GET", f"/messages/{sms_id}", key="read")
    assert (got["device_id"], got["sim"], got["pool"]) == (v1.device.id, 1, None)
    assert (got["priority"], got["customer_id"]) == ("high", 77)
    assert got["send_at"] == when.isoformat()
    # One core: the compat API shows the same message, with the same schedule.
    response = await v1.client.get("/getdata/getallsms", params={"token": v1.compat_token})
    item = (await response.json())["smss"][str(sms_id)]
    assert item["timetosend"]["date"] == f"{when:%Y-%m-%d %H:%M:%S}.000000"
    assert (item["sim"], item["urgent"], item["customerid"]) == (1, True, 77)
    # ... and a compat message shows here.
    form = {"token": v1.compat_token, "sendto": NUMBER, "body": "compat",
            "device_id": v1.device.id}  # fmt: skip
    response = await v1.client.post("/getdata/addsms", data=form)
    compat_id = (await response.json())["sms_id"]
    got = await v1.ok("GET", f"/messages/{compat_id}", key="read")
    assert (got["text"], got["status_name"]) == ("compat", "queued")


async def test_schedule_must_be_a_date_not_past_and_not_too_far(v1: V1) -> None:
    for when in ("tomorrow", "2020-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "2030-02-30"):
        await v1.err("POST", "/messages", "invalid_schedule", key="send",
                     json={"to": [NUMBER], "text": "x", "send_at": when})  # fmt: skip
    assert rows(v1) == 0


async def test_history_follows_the_message_through_the_agent_protocol(v1: V1) -> None:
    sms_id = (await v1.send(device_id=v1.device.id))["messages"][0]["id"]
    store, now = v1.gateway.store, v1.gateway.clock()
    lease = await store.lease_due(v1.device.id, 10, "lease-1", now, now + 60 * US)
    assert [m.id for m in lease.messages] == [sms_id]
    await store.commit_lease(v1.device.id, "lease-1", [sms_id], now + 1)
    events = [
        ReportEvent("e1", sms_id, "sent", now + 2, parts=((0, 42),)),
        ReportEvent("e2", sms_id, "delivered", now + 3),
    ]
    await store.apply_events(v1.device.id, events, now + 4)
    got = await v1.ok("GET", f"/messages/{sms_id}", key="read")
    assert [h["status_name"] for h in got["history"]] == [
        "queued", "taken", "committed", "sent", "delivered"]  # fmt: skip
    assert all(h["device_id"] == v1.device.id and h["sim"] == 0 for h in got["history"])
    assert got["parts_sent"] == [{"index": 0, "reference": 42}]
    assert got["sent_at"] is not None and got["delivered_at"] is not None
    await v1.err("POST", f"/messages/{sms_id}/cancel", "conflict", key="send")


async def test_failed_message_history_carries_the_error_code(v1: V1) -> None:
    sms_id = (await v1.send(device_id=v1.device.id))["messages"][0]["id"]
    store, now = v1.gateway.store, v1.gateway.clock()
    await store.lease_due(v1.device.id, 10, "l", now, now + 60 * US)
    await store.commit_lease(v1.device.id, "l", [sms_id], now)
    event = ReportEvent("f", sms_id, "failed", now, status=9, code="cms-38", reason="network")
    await store.apply_events(v1.device.id, [event], now)
    got = await v1.ok("GET", f"/messages/{sms_id}", key="read")
    assert got["history"][-1] == {**got["history"][-1], "status": 9, "error_code": "cms-38"}
    assert (got["error_code"], got["error_reason"]) == ("cms-38", "network")


async def test_cancel_before_and_during_a_lease(v1: V1) -> None:
    sent = await v1.send(to=[NUMBER, NUMBER], device_id=v1.device.id)
    first, second = (m["id"] for m in sent["messages"])
    got = await v1.ok("POST", f"/messages/{first}/cancel", key="send")
    assert (got["status"], got["status_name"]) == (Status.CANCELLED, "cancelled")
    assert got["history"][-1]["status_name"] == "cancelled"
    await v1.err("POST", f"/messages/{first}/cancel", "conflict", key="send")
    store, now = v1.gateway.store, v1.gateway.clock()
    lease = await store.lease_due(v1.device.id, 10, "l2", now, now + 60 * US)
    assert [m.id for m in lease.messages] == [second]  # the cancelled one is not handed out
    await v1.ok("POST", f"/messages/{second}/cancel", key="send")
    # The agent's late commit of the cancelled message is rejected: it never goes out.
    committed, rejected = await store.commit_lease(v1.device.id, "l2", [second], now)
    assert (committed, rejected) == ([], [second])
    await v1.err("POST", "/messages/999999/cancel", "not_found", key="send")


async def test_validity_expires_a_message_no_sim_took(v1: V1) -> None:
    sent = await v1.send(device_id=v1.device.id, validity_minutes=5)
    sms_id = sent["messages"][0]["id"]
    assert sent["valid_until"] is not None
    app_expiry = v1.client.app[EXPIRY]
    assert await app_expiry.sweep() == 0  # not yet
    app_expiry.clock = lambda: v1.gateway.clock() + 6 * 60 * US
    assert await app_expiry.sweep() == 1
    got = await v1.ok("GET", f"/messages/{sms_id}", key="read")
    assert (got["status"], got["status_name"], got["error_code"]) == (21, "expired", "expired")
    now = v1.gateway.clock()
    lease = await v1.gateway.store.lease_due(v1.device.id, 10, "l", now, now + US)
    assert lease.messages == []


async def test_list_pages_with_a_cursor_and_filters(v1: V1) -> None:
    ids = [m["id"] for m in (await v1.send(to=[NUMBER] * 5, device_id=v1.device.id))["messages"]]
    other = (await v1.send(to=["+4915700000001"], device_id=v1.device.id, sim=1))["messages"]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "2", "number": NUMBER, **({"cursor": cursor} if cursor else {})}
        page = await v1.ok("GET", "/messages", key="read", params=params)
        seen += [m["id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    page = await v1.ok("GET", "/messages", key="read", params={"sim": "1"})
    assert [m["id"] for m in page["messages"]] == [other[0]["id"]]
    page = await v1.ok("GET", "/messages", key="read", params={"status": "7"})
    assert page == {"messages": [], "next_cursor": None}
    for params in ({"cursor": "bm90IGEgY3Vyc29y"}, {"limit": "0"}, {"status": "x"},
                   {"from": "yesterday"}, {"nope": "1"}):  # fmt: skip
        await v1.err("GET", "/messages", "invalid_input", key="read", params=params)
    await v1.err("GET", "/messages", "not_found", key="read", params={"pool": "nosuch"})
    # Routes without query parameters refuse them too: a misspelt option is never ignored.
    await v1.err("GET", "/balance", "invalid_input", key="read", params={"verbose": "1"})


async def test_incoming_list_and_read(v1: V1) -> None:
    stored = await v1.gateway.store.store_incoming(
        v1.account.id, v1.device.id,
        [IncomingMessage("a", 1, "+4915700000009", "hello"), IncomingMessage("b", 0, NUMBER, "hi")],
        v1.gateway.clock(),
    )  # fmt: skip
    page = await v1.ok("GET", "/incoming", key="read")
    assert [(m["from"], m["text"], m["sim"]) for m in page["messages"]] == [
        (NUMBER, "hi", 0), ("+4915700000009", "hello", 1)]  # fmt: skip
    one = await v1.ok("GET", f"/incoming/{stored[0][1]}", key="read")
    assert one["text"] == "hello" and one["device_id"] == v1.device.id
    sent = (await v1.send())["messages"][0]["id"]  # an outgoing id is no incoming SMS
    await v1.err("GET", f"/incoming/{sent}", "not_found", key="read")
    await v1.err("GET", f"/messages/{stored[0][1]}", "not_found", key="read")


async def test_get_send_only_for_keys_that_allow_it(v1: V1) -> None:
    params = {"to": f"{NUMBER},+4915700000001", "text": "by url"}
    await v1.err("GET", "/send", "get_send_disabled", key="send", params=params)
    _, secret = await v1.native.keys.create(v1.account, "url", ["send"], allow_get_send=True)
    sent = await v1.ok("GET", "/send", key=None, params={**params, "api_key": secret})
    assert sent["accepted"] == 2
    sent = await v1.ok("GET", "/send", key=secret, params=params)  # the header works too
    assert sent["accepted"] == 2 and rows(v1) == 4
    too_many = {**params, "to": ",".join([NUMBER] * 51)}
    await v1.err("GET", "/send", "too_many_numbers", key=secret, params=too_many)


async def test_bad_bodies_get_the_error_shape_never_a_500(v1: V1) -> None:
    for raw in (b"{", b"[]", b"null", b"", b'{"to": "x", "text": "y"}', b'{"to": [1], "text": "y"}',
                b'{"to": ["+4915752982212"], "text": "y", "bogus": 1}',
                b'{"to": ["+4915752982212"], "text": ""}', b"\xff\xfe",
                b'{"to": ["+4915752982212"], "text": "y", "sim": 7, "device_id": 1}',
                b"[" * 100_000):  # fmt: skip
        response = await v1.client.post(
            "/api/v1/messages", data=raw,
            headers={"Authorization": f"Bearer {v1.keys['send']}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        data = await response.json()
        assert response.status == 400, (raw[:40], data)
        assert data["error"]["code"] in ("invalid_input", "invalid_numbers"), data
    assert rows(v1) == 0
    assert GATEWAY in v1.client.app
