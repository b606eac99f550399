"""Pools over /api/v1 (the routing use cases of the CLI) and the device list and profile."""

from __future__ import annotations

from simhive.server.core.models import DeviceFacts, ReportEvent, Sim
from simhive.server.core.pools import SimOffer
from tests.server._v1 import NUMBER, V1


async def test_pool_lifecycle(v1: V1) -> None:
    made = await v1.ok("POST", "/pools", key="devices",
                       json={"name": "shop", "strategy": "full", "sticky": True})  # fmt: skip
    assert (made["name"], made["kind"], made["strategy"], made["sticky"]) == (
        "shop", "named", "full", True)  # fmt: skip
    await v1.err("POST", "/pools", "already_exists", key="devices", json={"name": "shop"})
    await v1.err("POST", "/pools", "invalid_input", key="devices", json={"name": "all"})
    await v1.err("POST", "/pools", "invalid_input", key="devices", json={"name": "Bad Name"})
    info = await v1.ok("PUT", f"/pools/shop/sims/{v1.device.id}/1", key="devices",
                       json={"weight": 3})  # fmt: skip
    assert info["sims"] == [
        {"device_id": v1.device.id, "sim": 1, "weight": 3, "used_this_cycle": 0}
    ]
    assert v1.other_device is not None
    await v1.err("PUT", f"/pools/shop/sims/{v1.other_device.id}/0", "not_found", key="devices",
                 json={})  # fmt: skip
    sent = await v1.send(pool="shop", to=[NUMBER] * 3)
    info = await v1.ok("GET", "/pools/shop", key="read")
    assert info["waiting"] == 3
    got = await v1.ok("GET", f"/messages/{sent['messages'][0]['id']}", key="read")
    assert got["pool"] == "shop" and got["device_id"] is None
    page = await v1.ok("GET", "/messages", key="read", params={"pool": "shop"})
    assert len(page["messages"]) == 3
    await v1.err("DELETE", "/pools/shop", "conflict", key="devices")
    patched = await v1.ok("PATCH", "/pools/shop", key="devices", json={"strategy": "partial"})
    assert (patched["strategy"], patched["sticky"]) == ("partial", True)
    await v1.ok("PATCH", "/pools/all", key="devices", json={"strategy": "least-loaded"})
    names = [p["name"] for p in (await v1.ok("GET", "/pools", key="read"))["pools"]]
    assert names == ["all", "shop"]
    for m in sent["messages"]:
        await v1.ok("POST", f"/messages/{m['id']}/cancel", key="send")
    info = await v1.ok("DELETE", f"/pools/shop/sims/{v1.device.id}/1", key="devices")
    assert info["sims"] == []
    assert await v1.ok("DELETE", "/pools/shop", key="devices") == {"deleted": "shop"}
    await v1.err("GET", "/pools/shop", "not_found", key="read")
    await v1.err("POST", "/messages", "not_found", key="send",
                 json={"to": [NUMBER], "text": "x", "pool": "shop"})  # fmt: skip


async def test_devices_list_and_profile(v1: V1) -> None:
    store, now = v1.gateway.store, v1.gateway.clock()
    listed = (await v1.ok("GET", "/devices", key="read"))["devices"]
    assert [(d["id"], d["connection"], d["sims"]) for d in listed] == [
        (v1.device.id, "never_seen", [])]  # fmt: skip
    sims = [Sim(v1.device.id, 0, iccid="8949", number="+4915700000001", operator="Telekom",
                country_iso="DE", registered=True, signal_dbm=-71),
            Sim(v1.device.id, 1, iccid="8950", operator="Vodafone")]  # fmt: skip
    await store.update_device_facts(v1.device.id, DeviceFacts(appversion="0.1.0"), sims, now)
    await store.offer_sims(v1.device.id, [SimOffer(0, True, 5, 5), SimOffer(1, False,
                                          reason="no network")], now)  # fmt: skip
    await v1.send(to=[NUMBER] * 2, device_id=v1.device.id, sim=0)
    listed = (await v1.ok("GET", "/devices", key="read"))["devices"]
    assert listed[0]["connection"] == "online" and listed[0]["app_version"] == "0.1.0"
    assert [s["operator"] for s in listed[0]["sims"]] == ["Telekom", "Vodafone"]
    profile = await v1.ok("GET", f"/devices/{v1.device.id}", key="read")
    first, second = profile["sims"]
    assert (first["ready"], first["queued"], first["signal_dbm"], first["country"]) == (
        True, 2, -71, "de")  # fmt: skip
    assert (second["ready"], second["not_ready_reason"], second["queued"]) == (
        False, "no network", 0)  # fmt: skip
    assert first["per_day"] == profile["pacing"]["per_day"] == first["remaining_today"]
    # One of them leaves: today's count goes up, the queue down.
    now = v1.gateway.clock()
    lease = await store.lease_due(v1.device.id, 1, "l", now, now + 60_000_000)
    [sms_id] = [m.id for m in lease.messages]
    assert (await store.commit_lease(v1.device.id, "l", [sms_id], now))[0] == [sms_id]
    event = ReportEvent("s", sms_id, "sent", v1.gateway.clock())
    await store.apply_events(v1.device.id, [event], v1.gateway.clock())
    first = (await v1.ok("GET", f"/devices/{v1.device.id}", key="read"))["sims"][0]
    assert (first["queued"], first["sent_today"], first["failed_today"]) == (1, 1, 0)
    assert first["remaining_today"] == first["per_day"] - 1
    await v1.err("GET", "/devices/999", "not_found", key="read")
