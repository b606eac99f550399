"""The agent protocol's guarantees an operator relies on, checked through the compat API too:
tokens bound to one device, leases that expire back to the queue on their own (sweeper), SIM
info and lastseen in getalldevices, multipart parts kept, and malformed input never a 500."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.server_agent.conftest import HELLO, LEASE_SECONDS, Env, eventually


async def test_expired_lease_returns_to_the_queue_without_another_pull(env: Env) -> None:
    sms_id = await env.send()
    first = await env.agent("pull", {"wait": 0})
    assert [m["attempt"] for m in first["messages"]] == [1]
    assert await env.status(sms_id) == 2
    # nobody pulls again: the server's sweeper alone puts it back (lease is LEASE_SECONDS long)
    await eventually(
        lambda: _is(env, sms_id, 1), "status 1 after the lease expired", LEASE_SECONDS + 15
    )
    late = await env.agent("commit", {"lease_id": first["lease_id"], "ids": [sms_id]})
    assert late == {"committed": [], "rejected": [sms_id]}
    again = await env.agent("pull", {"wait": 0})
    assert [(m["id"], m["attempt"]) for m in again["messages"]] == [(sms_id, 2)]
    ok = await env.agent("commit", {"lease_id": again["lease_id"], "ids": [sms_id]})
    assert ok == {"committed": [sms_id], "rejected": []}
    assert await env.status(sms_id) == 3


async def test_tokens_are_bound_to_their_kind_and_device(env: Env) -> None:
    for headers in (
        {},
        {"Authorization": f"Bearer {env.token}"},  # the account token is not a device token
        {"Authorization": "Bearer "},
        {"Authorization": f"Basic {env.device_token}"},
        {"Authorization": f"Bearer {env.device_token}x"},
    ):
        r = await env.client.post("/agent/v1/pull", json={"wait": 0}, headers=headers)
        assert r.status == 401, headers
        assert (await r.json())["error"]["code"] == "unauthorized"
    # a device token is not an account token either
    r = await env.client.get("/getdata/getallsms", params={"token": env.device_token})
    assert (await r.json())["error"] == 1

    mine = await env.send()
    theirs = await env.agent("pull", {"wait": 0}, token=env.other_token)
    assert theirs["messages"] == []  # the other device never sees this device's messages
    lease = await env.agent("pull", {"wait": 0})
    stolen = await env.client.post(
        "/agent/v1/commit",
        json={"lease_id": lease["lease_id"], "ids": [mine]},
        headers={"Authorization": f"Bearer {env.other_token}"},
    )
    body = await stolen.json()
    assert (stolen.status, body) == (200, {"committed": [], "rejected": [mine]})
    assert await env.status(mine) == 2
    foreign = {"event_id": "x", "sms_id": mine, "type": "delivered"}
    assert await env.agent("report", {"events": [foreign]}, token=env.other_token) == {
        "accepted": []}  # fmt: skip
    assert await env.status(mine) == 2


async def test_hello_fills_getalldevices_siminfo_and_lastseen(env: Env) -> None:
    before = await env.compat("getalldevices")
    assert before["device"][str(env.device_id)]["siminfo"] == []
    answer = await env.agent("hello", HELLO)
    assert answer["device_id"] == env.device_id
    assert set(answer["settings"]["sims"]) >= {"0", "1"}
    data = await env.compat("getalldevices")
    dev = data["device"][str(env.device_id)]
    assert dev["siminfo"] == [
        {"Slot": "0", "IccId": "8949226172233934327", "Number": "+4915752982212",
         "Roaming": "0", "CountryIso": "de", "CarrierName": "Telekom"},
        {"Slot": "1", "IccId": "8949000000000000001", "Number": "+4915700000001",
         "Roaming": "1", "CountryIso": "de", "CarrierName": "o2"},
    ]  # fmt: skip
    assert all(isinstance(v, str) for sim in dev["siminfo"] for v in sim.values())
    assert dev["imei"] == "867856030123456" and dev["appversion"] == "0.1.0"
    lastseen = datetime.strptime(dev["lastseen"]["date"], "%Y-%m-%d %H:%M:%S.%f")
    age = datetime.now(UTC).replace(tzinfo=None) - lastseen
    assert abs(age.total_seconds()) < 60, age  # refreshed by hello, not the creation time
    status = await env.compat("getdevicestatus", device_id=env.device_id)
    assert status["online"] is True


async def test_multipart_parts_and_references_are_stored(env: Env) -> None:
    sms_id = await env.send(body="x" * 300)
    lease = await env.agent("pull", {"wait": 0})
    await env.agent("commit", {"lease_id": lease["lease_id"], "ids": [sms_id]})
    sent = {"event_id": f"{sms_id}:sent", "sms_id": sms_id, "type": "sent",
            "at": "2026-11-22T04:34:05+00:00", "sim": 0,
            "parts": [{"index": 0, "reference": 254}, {"index": 1, "reference": 255}]}  # fmt: skip
    await env.agent("report", {"events": [sent]})
    assert await env.status(sms_id) == 6
    with sqlite3.connect(f"file:{env.gw.store.path}?mode=ro", uri=True) as conn:  # type: ignore[attr-defined]  # SqliteStore has .path
        rows = conn.execute(
            "SELECT part_index, reference FROM message_parts WHERE sms_id = ? ORDER BY part_index",
            (sms_id,),
        ).fetchall()
    assert rows == [(0, 254), (1, 255)]


async def test_a_part_sent_without_a_readable_reference_is_sent_with_null(env: Env) -> None:
    # The modem answered `+CMGS: ²` (line noise): the part went out, its TP-MR is unknown.
    sms_id = await env.send(body="x" * 300)
    lease = await env.agent("pull", {"wait": 0})
    await env.agent("commit", {"lease_id": lease["lease_id"], "ids": [sms_id]})
    sent = {"event_id": f"{sms_id}:sent", "sms_id": sms_id, "type": "sent",
            "at": "2026-11-22T04:34:05+00:00", "sim": 0,
            "parts": [{"index": 0, "reference": None}, {"index": 1, "reference": 18}]}  # fmt: skip
    assert (await env.agent("report", {"events": [sent]}))["accepted"] == [f"{sms_id}:sent"]
    assert await env.status(sms_id) == 6
    with sqlite3.connect(f"file:{env.gw.store.path}?mode=ro", uri=True) as conn:  # type: ignore[attr-defined]  # SqliteStore has .path
        rows = conn.execute(
            "SELECT part_index, reference FROM message_parts WHERE sms_id = ? ORDER BY part_index",
            (sms_id,),
        ).fetchall()
    assert rows == [(0, None), (1, 18)]


@pytest.mark.parametrize("reference", [-1, 256, "17", True])
async def test_a_reference_is_a_tp_mr_or_null(env: Env, reference: object) -> None:
    event = {"event_id": "e", "sms_id": 1, "type": "sent",
             "parts": [{"index": 0, "reference": reference}]}  # fmt: skip
    answer = await env.agent("report", {"events": [event]}, status=400)
    assert answer["error"]["code"] == "bad_request"
    assert answer["error"]["message"].startswith("events[0].parts[0].reference must be")


async def test_long_poll_is_answered_by_an_addsms_through_the_compat_api(env: Env) -> None:
    poll = asyncio.create_task(env.agent("pull", {"max": 5, "wait": 20}))
    await asyncio.sleep(0.3)
    assert not poll.done()  # nothing due: the server holds the poll
    started = time.monotonic()
    r = await env.client.post("/getdata/addsms", data={
        "token": env.token, "device_id": str(env.device_id), "sendto": "+4915752982212",
        "body": "OTP 1234", "urgent": "1"})  # fmt: skip
    sms_id = (await r.json())["sms_id"]
    answer = await asyncio.wait_for(poll, 15)
    # woken by the stored message, well before the 20 s wait (a margin, not a speed claim)
    assert time.monotonic() - started < 10
    assert [(m["id"], m["body"], m["urgent"]) for m in answer["messages"]] == [
        (sms_id, "OTP 1234", True)]  # fmt: skip


JUNK: list[Any] = [None, 0, -1, 2**70, 1.5, "", "x", [], {}, [None], {"a": {}}, True]


@pytest.mark.parametrize("route", ["hello", "pull", "commit", "report", "incoming", "status"])
async def test_malformed_bodies_get_a_4xx_with_the_error_shape(env: Env, route: str) -> None:
    fields = {
        "hello": ["agent_version", "device", "sims"],
        "pull": ["max", "wait"],
        "commit": ["lease_id", "ids"],
        "report": ["events"],
        "incoming": ["messages"],
        "status": ["sims", "events"],
    }[route]
    bodies: list[Any] = [{f: junk} for f in fields for junk in JUNK]
    bodies += [{"events": [{"event_id": "e", "sms_id": junk, "type": "sent"}]} for junk in JUNK]
    bodies += [{"messages": [{"key": junk, "from": "+491", "body": "b", "sim": 0}]}
               for junk in JUNK]  # fmt: skip
    bodies += [{"sims": [{"slot": junk}]} for junk in JUNK]
    headers = {"Authorization": f"Bearer {env.device_token}"}
    for body in bodies:
        r = await env.client.post(f"/agent/v1/{route}", json=body, headers=headers)
        assert r.status < 500, (route, body, r.status, await r.text())
        if r.status >= 400:
            data = await r.json()
            assert set(data) == {"error"} and set(data["error"]) == {"code", "message"}, data
            assert data["error"]["code"] in ("bad_request", "too_large", "not_found", "conflict")
    for raw in (b"", b"null", b"\x00\x01", b'{"max": 1e999}', b"[" * 10000):
        r = await env.client.post(f"/agent/v1/{route}", data=raw, headers=headers)
        assert r.status < 500, (route, raw[:20], r.status)


async def _is(env: Env, sms_id: int, status: int) -> bool:
    return await env.status(sms_id) == status


async def test_a_reset_device_token_is_refused_once_the_auth_cache_window_passes(env: Env) -> None:
    """Device tokens are cached for limits.TOKEN_CACHE_SECONDS (one store lookup per window,
    not per request); a token reset elsewhere (the admin CLI's process) is refused after it."""
    from simhive.server.api.agent import AGENT
    from simhive.server.core import limits

    service = env.app[AGENT]
    now = [1000.0]
    service.monotonic = lambda: now[0]
    lookups = 0
    real = service.store.device_by_token_hash

    async def counted(token_hash: str) -> Any:
        nonlocal lookups
        lookups += 1
        return await real(token_hash)

    service.store.device_by_token_hash = counted  # type: ignore[method-assign]
    for _ in range(3):
        await env.agent("pull", {"wait": 0})
    assert lookups == 1
    # what `simhive-server token reset --device-id` does, behind this process's back
    await env.gw.store.set_device_token(env.device_id, "0" * 64)
    await env.agent("pull", {"wait": 0})  # still inside the window
    now[0] += limits.TOKEN_CACHE_SECONDS + 0.1
    await env.agent("pull", {"wait": 0}, status=401)
    await env.agent("pull", {"wait": 0}, status=401)
    assert lookups == 3  # a refused token is never cached
