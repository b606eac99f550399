"""The agent protocol routes (docs/agent-protocol.md) against the real store, in process: each
route's answers, order and idempotency, and its 4xx for bad input."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.server_agent.conftest import HELLO, LEASE_SECONDS, Env

# The second SIM as sparse as an agent may send it (defaults filled in), the first with an
# upper-case country code (stored lower-case).
SPARSE_HELLO = {
    **HELLO,
    "sims": [{**HELLO["sims"][0], "country_iso": "DE"},
             {"slot": 1, "iccid": "8949000000000000001", "roaming": True,
              "carrier": "o2", "country_iso": "de"}],
}  # fmt: skip


async def test_hello_stores_facts_and_answers_settings(env: Env) -> None:
    answer = await env.agent("hello", SPARSE_HELLO)
    assert answer["device_id"] == env.device_id
    assert answer["server_time"].endswith("+00:00")
    settings = answer["settings"]
    assert settings["pull_max"] == 15 and settings["lease_seconds"] == LEASE_SECONDS
    assert settings["delaybetweenrequest"] == 10 and settings["delaybetweeneachsms"] is None
    assert set(settings["sims"]) == {"0", "1"}
    assert settings["sims"]["0"]["min_interval_seconds"] == 10
    r = await env.client.get("/getdata/getalldevices", params={"token": env.token})
    dev = (await r.json())["device"][str(env.device_id)]
    assert dev["imei"] == "867856030123456" and dev["serialnumber"] == "host-a/ttyUSB0"
    assert dev["appversion"] == "0.1.0" and dev["number"] == "+4915752982212"
    assert dev["siminfo"] == [
        {"Slot": "0", "IccId": "8949226172233934327", "Number": "+4915752982212",
         "Roaming": "0", "CountryIso": "de", "CarrierName": "Telekom"},
        {"Slot": "1", "IccId": "8949000000000000001", "Number": "", "Roaming": "1",
         "CountryIso": "de", "CarrierName": "o2"},
    ]  # fmt: skip
    r = await env.client.get(
        "/getdata/getdevicestatus", params={"token": env.token, "device_id": str(env.device_id)}
    )
    assert (await r.json())["online"] is True


async def test_auth(env: Env) -> None:
    for headers in ({}, {"Authorization": "Bearer " + "0" * 32},
                    {"Authorization": f"Basic {env.device_token}"},
                    {"Authorization": f"Bearer {env.token}"}):  # fmt: skip
        r = await env.client.post("/agent/v1/pull", json={"wait": 0}, headers=headers)
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unauthorized"


async def test_pull_order_commit_and_status_lifecycle(env: Env) -> None:
    plain = await env.send()
    urgent = await env.send(urgent=True, sim=1)
    later = await env.send(timetosend=env.gw.clock() + 3600 * 1_000_000)
    other = await env.send(device_id=env.other_device_id)
    answer = await env.agent("pull", {"max": 15, "wait": 0})
    ids = [m["id"] for m in answer["messages"]]
    assert ids == [urgent, plain]  # urgent first; scheduled held back; other device's not here
    first = answer["messages"][0]
    assert first == {"id": urgent, "to": "+4915752982212", "body": "hi", "sim": 1,
                     "urgent": True, "timetosend": None, "attempt": 1, "pool": None}  # fmt: skip
    assert answer["lease_id"] and answer["lease_expires"]
    assert await env.status_of(plain) == (2, "Taken from Server")
    commit = {"lease_id": answer["lease_id"], "ids": ids}
    assert await env.agent("commit", commit) == {"committed": ids, "rejected": []}
    assert await env.status_of(plain) == (3, "Queued for sending")
    # committing the same lease again answers the same lists
    assert await env.agent("commit", commit) == {"committed": ids, "rejected": []}
    # the other device cannot commit, and ids of a foreign lease are rejected
    assert await env.agent("commit", commit, token=env.other_token) == {
        "committed": [], "rejected": ids}  # fmt: skip
    assert await env.status_of(later) == (1, "New")
    assert await env.status_of(other) == (1, "New")


async def test_max_and_batches(env: Env) -> None:
    sent = [await env.send() for _ in range(5)]
    a = await env.agent("pull", {"max": 2, "wait": 0})
    b = await env.agent("pull", {"max": 15, "wait": 0})
    assert [m["id"] for m in a["messages"]] == sent[:2]
    assert [m["id"] for m in b["messages"]] == sent[2:]
    empty = await env.agent("pull", {"wait": 0})
    assert empty == {"lease_id": None, "lease_expires": None, "messages": []}


async def test_expired_lease_returns_to_queue(env: Env) -> None:
    sms_id = await env.send()
    first = await env.agent("pull", {"wait": 0})
    await asyncio.sleep(LEASE_SECONDS + 0.2)
    # the long poll wakes by itself when the lease expires, and hands the message out again
    second = await env.agent("pull", {"wait": 5})
    assert [m["id"] for m in second["messages"]] == [sms_id]
    assert second["messages"][0]["attempt"] == 2
    late = await env.agent("commit", {"lease_id": first["lease_id"], "ids": [sms_id]})
    assert late == {"committed": [], "rejected": [sms_id]}
    ok = await env.agent("commit", {"lease_id": second["lease_id"], "ids": [sms_id]})
    assert ok == {"committed": [sms_id], "rejected": []}


async def test_long_poll_answers_when_work_arrives(env: Env) -> None:
    poll = asyncio.create_task(env.agent("pull", {"wait": 10}))
    await asyncio.sleep(0.3)
    assert not poll.done()  # holding: nothing is due
    started = time.monotonic()
    sms_id = await env.send()
    answer = await asyncio.wait_for(poll, 10)
    assert [m["id"] for m in answer["messages"]] == [sms_id]
    # woken by the store, not by the 10 s timeout (no speed claim, just which wake-up it was)
    assert time.monotonic() - started < 5


async def test_long_poll_wakes_for_scheduled_message(env: Env) -> None:
    sms_id = await env.send(timetosend=env.gw.clock() + 700_000)
    answer = await env.agent("pull", {"wait": 8})
    assert [m["id"] for m in answer["messages"]] == [sms_id]


async def test_report_lifecycle_idempotent_and_never_backwards(env: Env) -> None:
    a, b, c = await env.send(), await env.send(), await env.send()
    lease = await env.agent("pull", {"wait": 0})
    await env.agent("commit", {"lease_id": lease["lease_id"], "ids": [a, b, c]})
    events = [
        {"event_id": f"{a}:sent", "sms_id": a, "type": "sent", "at": "2026-11-22T04:34:05+00:00",
         "sim": 0, "parts": [{"index": 0, "reference": 17}, {"index": 1, "reference": 18}]},
        {"event_id": f"{a}:delivered", "sms_id": a, "type": "delivered",
         "at": "2026-11-22T04:35:00+00:00"},
        {"event_id": f"{b}:failed", "sms_id": b, "type": "failed", "at": "2026-11-22T04:35:00Z",
         "status": 10, "code": "CMS 331", "reason": "no network service"},
        {"event_id": f"{c}:unknown", "sms_id": c, "type": "unknown",
         "reason": "agent stopped during AT+CMGS; not resent"},
    ]  # fmt: skip
    ids = [e["event_id"] for e in events]
    assert await env.agent("report", {"events": events}) == {"accepted": ids}
    assert await env.status_of(a) == (7, "Delivered")
    assert await env.status_of(b) == (10, "Not sent - No service")
    assert await env.status_of(c) == (9, "Not SENT - Generic failure")
    # a resent batch changes nothing; a late `sent` after `delivered` is accepted and ignored
    assert await env.agent("report", {"events": events}) == {"accepted": ids}
    late = {"event_id": f"{a}:sent:again", "sms_id": a, "type": "sent"}
    assert await env.agent("report", {"events": [late]}) == {"accepted": [late["event_id"]]}
    assert await env.status_of(a) == (7, "Delivered")
    r = await env.client.get("/getdata/getallsms", params={"token": env.token})
    item = (await r.json())["smss"][str(a)]
    assert item["senttime"]["date"] == "2026-11-22 04:34:05.000000"
    # another device's token can neither read nor change this device's messages
    foreign = {"event_id": "x:delivered", "sms_id": b, "type": "delivered"}
    assert await env.agent("report", {"events": [foreign]}, token=env.other_token) == {
        "accepted": []}  # fmt: skip
    assert await env.status_of(b) == (10, "Not sent - No service")


async def test_report_events_ride_along_with_a_commit(env: Env) -> None:
    a, b = await env.send(), await env.send()
    first = await env.agent("pull", {"max": 1, "wait": 0})
    await env.agent("commit", {"lease_id": first["lease_id"], "ids": [a]})
    second = await env.agent("pull", {"wait": 0})
    sent = {
        "event_id": f"{a}:sent",
        "sms_id": a,
        "type": "sent",
        "at": "2026-11-22T04:34:05+00:00",
        "sim": 0,
        "parts": [{"index": 0, "reference": 3}],
    }
    foreign = {"event_id": "x:sent", "sms_id": 10**9, "type": "sent"}  # fmt: skip
    commit = {"lease_id": second["lease_id"], "ids": [b]}
    # A bad event refuses the whole request before anything is done: b stays leased.
    bad = {**sent, "type": "lost"}
    answer = await env.agent("commit", {**commit, "events": [bad]}, status=400)
    assert answer["error"]["code"] == "bad_request"
    assert await env.status_of(b) == (2, "Taken from Server")
    # Good ones: the commit's answer, and `accepted` as a report would answer it.
    answer = await env.agent("commit", {**commit, "events": [sent, foreign]})
    assert answer == {"committed": [b], "rejected": [], "accepted": [sent["event_id"]]}
    assert await env.status_of(a) == (6, "Sent by Phone")
    assert await env.status_of(b) == (3, "Queued for sending")
    # Repeated after a lost answer: the same answer, nothing applied twice.
    assert await env.agent("commit", {**commit, "events": [sent, foreign]}) == answer
    assert await env.agent("commit", {**commit, "events": []}) == {**answer, "accepted": []}
    assert await env.agent("commit", commit) == {"committed": [b], "rejected": []}


async def test_incoming_is_idempotent_per_key(env: Env) -> None:
    msg = {"key": "26201:+4917012345:2611220434050:3f2a", "sim": 0, "from": "+4917012345",
           "body": "Hello", "sent_at": "2026-11-22T04:34:00+00:00",
           "received_at": "2026-11-22T04:34:05+00:00", "parts": 1, "incomplete": False}  # fmt: skip
    first = await env.agent("incoming", {"messages": [msg]})
    again = await env.agent("incoming", {"messages": [msg, {**msg, "key": "other"}]})
    sms_id = first["accepted"][0]["sms_id"]
    assert first == {"accepted": [{"key": msg["key"], "sms_id": sms_id}]}
    assert again["accepted"][0] == {"key": msg["key"], "sms_id": sms_id}
    assert again["accepted"][1]["sms_id"] != sms_id
    r = await env.client.get("/getdata/getallsms", params={"token": env.token, "status": "5"})
    data = await r.json()
    assert data["count"] == 2
    item = data["smss"][str(sms_id)]
    assert item["sendto"] == "+4917012345" and item["statustitle"] == "Income"
    assert item["created"]["date"] == "2026-11-22 04:34:05.000000"


async def test_status_replaces_sims(env: Env) -> None:
    await env.agent("hello", HELLO)
    body = {"sims": [{"slot": 0, "iccid": "89", "carrier": "Vodafone", "country_iso": "de"}],
            "events": [{"at": "2026-11-22T04:34:05+00:00", "kind": "modem",
                        "state": "disconnected", "reason": "port closed"}]}  # fmt: skip
    assert await env.agent("status", body) == {"ok": True}
    r = await env.client.get("/getdata/getalldevices", params={"token": env.token})
    dev = (await r.json())["device"][str(env.device_id)]
    assert [s["CarrierName"] for s in dev["siminfo"]] == ["Vodafone"]
    assert await env.agent("status", {"events": []}) == {"ok": True}  # no sims: kept
    r = await env.client.get("/getdata/getalldevices", params={"token": env.token})
    assert len((await r.json())["device"][str(env.device_id)]["siminfo"]) == 1


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        ("pull", {"max": 0}, "max must be between 1 and 100"),
        ("pull", {"max": "5"}, "max must be int"),
        ("pull", {"wait": 61}, "wait must be between 0 and 60"),
        ("commit", {"ids": [1]}, "lease_id is required"),
        ("commit", {"lease_id": "x", "ids": ["1"]}, "ids must be integers"),
        ("report", {"events": [{"event_id": "e", "sms_id": 1, "type": "lost"}]},
         "events[0].type must be one of sent, delivered, not_delivered, failed, unknown"),
        ("report", {"events": [{"event_id": "e", "sms_id": 1, "type": "failed", "status": 7}]},
         "events[0].status must be one of [9, 10, 11, 12, 100, 101]"),
        ("report", {"events": [{"event_id": "e", "sms_id": 1, "type": "sent", "at": "noon"}]},
         "events[0].at is not an ISO 8601 time"),
        ("report", {"events": ["x"]}, "events[0] must be an object"),
        ("incoming", {"messages": [{"key": "k"}]}, "messages[0].from is required"),
        ("hello", {"sims": [{"slot": 0}, {"slot": 0}]}, "sims: a slot is listed twice"),
        ("hello", {"sims": [{"slot": "0"}]}, "sims[0].slot must be int"),
    ],
)  # fmt: skip
async def test_bad_requests_are_400(env: Env, route: str, body: Any, message: str) -> None:
    answer = await env.agent(route, body, status=400)
    assert answer == {"error": {"code": "bad_request", "message": message}}


async def test_malformed_json_and_limits(env: Env) -> None:
    headers = {"Authorization": f"Bearer {env.device_token}"}
    for raw in (b"{", b"[1]", b"\xff"):
        r = await env.client.post("/agent/v1/pull", data=raw, headers=headers)
        assert r.status == 400 and (await r.json())["error"]["code"] == "bad_request"
    r = await env.client.post("/agent/v1/report", data=b"x" * (1024 * 1024 + 1), headers=headers)
    assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"
    many = {"events": [{"event_id": str(i), "sms_id": 1, "type": "sent"} for i in range(501)]}
    assert (await env.agent("report", many, status=413))["error"]["code"] == "too_large"


async def test_unknown_route_and_wrong_method_answer_in_the_protocols_error_shape(env: Env) -> None:
    auth = {"Authorization": f"Bearer {env.device_token}"}
    r = await env.client.post("/agent/v1/nosuchroute", json={}, headers=auth)
    assert r.status == 404
    assert (await r.json())["error"]["code"] == "not_found"
    r = await env.client.get("/agent/v1/hello", headers=auth)
    assert r.status == 405 and r.headers["Allow"] == "POST"
    error = (await r.json())["error"]
    assert error["code"] == "method_not_allowed" and "POST" in error["message"]
    # The compat API keeps its own shape for the same mistakes.
    r = await env.client.put("/getdata/addsms")
    assert r.status == 200 and (await r.json())["error"] == 1
