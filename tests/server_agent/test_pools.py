"""Pools and the per-SIM pull through the real app (docs/routing.md, docs/agent-protocol.md):
late binding, the three strategies, stickiness, hand-back, lease expiry and failover rules."""

from __future__ import annotations

from typing import Any

from simhive.server.core.gateway import Outgoing
from simhive.server.core.models import NewMessage
from tests.server_agent.conftest import Env, Servers, eventually

NUMBERS = [f"+491570000{i:04d}" for i in range(40)]


def sim(slot: int, room: int = 15, pool_room: int = 0, ready: bool = True) -> dict[str, Any]:
    return {"slot": slot, "ready": ready, "room": room, "pool_room": pool_room,
            **({} if ready else {"reason": "no network"})}  # fmt: skip


async def pull(env: Env, sims: list[dict[str, Any]], token: str | None = None) -> dict[int, int]:
    """One per-SIM pull and its commit; {sms id: slot it was bound to}."""
    answer = await env.agent("pull", {"max": 100, "wait": 0, "sims": sims}, token)
    got = {m["id"]: m["sim"] for m in answer["messages"]}
    if got:
        await env.agent("commit", {"lease_id": answer["lease_id"], "ids": list(got)}, token)
    return got


async def listed(env: Env, sms_id: int) -> dict[str, Any]:
    """The message as getallsms shows it."""
    row: dict[str, Any] = (await env.compat("getallsms"))["smss"][str(sms_id)]
    return row


async def to_pool(env: Env, pool: str, n: int, **kw: Any) -> list[int]:
    ids = []
    for i in range(n):
        req = Outgoing(kw.get("sendto", NUMBERS[i % len(NUMBERS)]), f"m{i}", None, pool=pool,
                       urgent=kw.get("urgent", False))  # fmt: skip
        ids += await env.gw.send(env.account, req)
    return ids


async def test_a_busy_sim_does_not_hold_back_its_neighbour(env: Env) -> None:
    backlog = [await env.send(sim=0, body=f"b{i}") for i in range(20)]
    urgent = await env.send(sim=1, urgent=True)
    # SIM 1 (slot 0) can take 3 more, SIM 2 has room: each SIM gets its own work.
    got = await pull(env, [sim(0, room=3), sim(1, room=15)])
    assert got == {backlog[0]: 0, backlog[1]: 0, backlog[2]: 0, urgent: 1}
    # A full SIM 1 takes nothing, and does not stop SIM 2.
    normal = await env.send(sim=1)
    assert await pull(env, [sim(0, room=0), sim(1)]) == {normal: 1}


async def test_a_sim_that_is_not_ready_gets_nothing_and_its_reason_is_kept(env: Env) -> None:
    waiting = await env.send(sim=1)
    assert await pull(env, [sim(0), sim(1, ready=False)]) == {}
    assert await env.gw.store.sim_readiness(env.device_id, 1) == (False, "no network")
    status = await env.compat("getsmsstatus", sms_id=waiting)
    assert (status["status"], status["waiting"]) == (
        1,
        f"SIM 2 of device {env.device_id} is not ready: no network",
    )
    assert await pull(env, [sim(0), sim(1)]) == {waiting: 1}
    # Ready again and taken: the answer is the plain one again.
    assert "waiting" not in await env.compat("getsmsstatus", sms_id=waiting)


async def test_pool_messages_are_bound_only_when_a_sim_with_pool_room_asks(env: Env) -> None:
    data = await env.compat("addsms", sendto=NUMBERS[0], body="otp", pool="all")
    sms_id = data["sms_id"]
    row = await listed(env, sms_id)
    assert (row["deviceid"], row["pool"], row["status"]) == (None, "all", 1)
    # Room but no pool room: a paced SIM leaves pool work to others.
    assert await pull(env, [sim(0, pool_room=0)]) == {}
    assert await pull(env, [sim(0, pool_room=0), sim(1, pool_room=1)]) == {sms_id: 1}
    row = await listed(env, sms_id)
    assert (row["deviceid"], row["sim"], row["status"]) == (env.device_id, 1, 3)
    # Pinned messages look as they always did: no `pool` key.
    pinned = await env.send()
    assert "pool" not in await listed(env, pinned)


async def test_any_sim_of_a_device_stays_on_that_device(env: Env) -> None:
    sms_id = (await env.compat("addsms", sendto=NUMBERS[1], body="x", device_id=env.device_id,
                               sim="any"))["sms_id"]  # fmt: skip
    assert await pull(env, [sim(0, pool_room=5)], env.other_token) == {}
    assert await pull(env, [sim(0, pool_room=5)]) == {sms_id: 0}


async def test_full_rotation_uses_every_sim_once_per_cycle_and_survives_a_restart(
    servers: Servers,
) -> None:
    env = await servers.start()
    await env.gw.routing.create(env.account, "otp", "full")
    for device in (env.device_id, env.other_device_id):
        for slot in (0, 1):
            await env.gw.routing.add_sim(env.account, "otp", device, slot)
    both = [sim(0, pool_room=5), sim(1, pool_room=5)]
    await pull(env, both, env.other_token)  # the other device's SIMs are ready (nothing waits)
    ids = await to_pool(env, "otp", 8)
    first = await pull(env, both)
    assert first == {ids[0]: 0, ids[1]: 1}  # one turn each, though they have room for more
    assert await pull(env, both) == {}  # the other device's SIMs have not had their turn
    # Before those take theirs, the server restarts: the cycle is stored.
    await servers.stop(env)
    env = await servers.start()
    second = await pull(env, both, env.other_token)
    assert second == {ids[2]: 0, ids[3]: 1}
    # The cycle is complete: a new one starts.
    assert await pull(env, both) == {ids[4]: 0, ids[5]: 1}
    info = await env.gw.routing.info(env.account, "otp")
    assert info.pool.cycle == 1 and info.waiting == 2


async def test_a_sim_that_is_down_does_not_hold_the_rotation_back(env: Env) -> None:
    await env.gw.routing.create(env.account, "otp", "full")
    for slot in (0, 1):
        await env.gw.routing.add_sim(env.account, "otp", env.device_id, slot)
    ids = await to_pool(env, "otp", 4)
    assert await pull(env, [sim(0, pool_room=5), sim(1, ready=False)]) == {ids[0]: 0}
    # SIM 2 is down: SIM 1 starts the next cycle alone instead of waiting for it.
    assert await pull(env, [sim(0, pool_room=5), sim(1, ready=False)]) == {ids[1]: 0}


async def test_least_loaded_gives_the_message_to_the_sim_with_most_room(env: Env) -> None:
    await env.gw.routing.update(env.account, "all", strategy="least-loaded")
    # Both devices say what room they have (nothing waits yet).
    await pull(env, [sim(0, pool_room=1)])
    await pull(env, [sim(0, pool_room=4)], env.other_token)
    [sms_id] = await to_pool(env, "all", 1)
    assert await pull(env, [sim(0, pool_room=1)]) == {}
    assert await pull(env, [sim(0, pool_room=4)], env.other_token) == {sms_id: 0}


async def test_a_sticky_pool_keeps_a_recipients_sim(env: Env) -> None:
    await env.gw.routing.create(env.account, "chat", "partial", sticky=True)
    for device in (env.device_id, env.other_device_id):
        await env.gw.routing.add_sim(env.account, "chat", device, 0)
    [first] = await to_pool(env, "chat", 1, sendto=NUMBERS[7])
    assert await pull(env, [sim(0, pool_room=5)], env.other_token) == {first: 0}
    [again] = await to_pool(env, "chat", 1, sendto=NUMBERS[7])
    assert await pull(env, [sim(0, pool_room=5)]) == {}  # not this device's recipient
    assert await pull(env, [sim(0, pool_room=5)], env.other_token) == {again: 0}
    # Its SIM goes down: the recipient moves to a healthy one, and sticks there.
    await pull(env, [sim(0, ready=False)], env.other_token)
    [moved] = await to_pool(env, "chat", 1, sendto=NUMBERS[7])
    assert await pull(env, [sim(0, pool_room=5)]) == {moved: 0}


async def test_released_pool_messages_leave_on_another_sim_and_pinned_ones_stay(
    env: Env,
) -> None:
    pooled = await to_pool(env, "all", 2)
    pinned = await env.send()
    got = await pull(env, [sim(0, pool_room=5)])
    assert set(got) == {*pooled, pinned}
    answer = await env.agent("release", {"ids": [*pooled, pinned, 999999], "reason": "unplugged"})
    assert sorted(answer["released"]) == sorted([*pooled, 999999])
    assert answer["kept"] == [pinned]
    assert await env.status(pooled[0]) == 1
    assert await pull(env, [sim(1, pool_room=5)], env.other_token) == {p: 1 for p in pooled}
    # Releasing again changes nothing: they are the other device's now.
    again = await env.agent("release", {"ids": pooled})
    assert sorted(again["released"]) == sorted(pooled) and again["kept"] == []
    assert await env.status(pooled[0]) == 3
    events = await env.gw.store.device_events(env.device_id)
    assert any(e.kind == "pool" and "unplugged" in e.reason for e in events)


async def test_an_expired_pool_lease_goes_back_to_the_pool_for_any_sim(env: Env) -> None:
    [sms_id] = await to_pool(env, "all", 1)
    answer = await env.agent("pull", {"max": 5, "wait": 0, "sims": [sim(0, pool_room=1)]})
    assert [m["id"] for m in answer["messages"]] == [sms_id]

    # Never committed (the agent died): after the 1 s lease it is unbound again.
    async def unbound() -> bool:
        row = await listed(env, sms_id)
        return row["status"] == 1 and row["deviceid"] is None

    await eventually(unbound, "the expired pool lease to return to the pool")
    assert await pull(env, [sim(1, pool_room=1)], env.other_token) == {sms_id: 1}


async def test_a_device_not_seen_lately_does_not_hold_a_full_cycle(servers: Servers) -> None:
    env = await servers.start()
    await env.gw.routing.update(env.account, "all", strategy="full")
    ids = await to_pool(env, "all", 3)
    await pull(env, [sim(0, pool_room=0)], env.other_token)  # ready, but busy
    assert await pull(env, [sim(0, pool_room=1)]) == {ids[0]: 0}
    assert await pull(env, [sim(0, pool_room=1)]) == {}  # the other device's turn
    # The other device's agent is gone: once it is past agent_offline_seconds, its turn lapses.
    await env.gw.store.touch_device(env.other_device_id, 0)
    assert await pull(env, [sim(0, pool_room=1)]) == {ids[1]: 0}


async def test_bad_pool_input_is_refused_clearly(env: Env) -> None:
    bad = await env.agent("pull", {"sims": [{"slot": 0}]}, status=400)
    assert bad["error"] == {"code": "bad_request", "message": "sims[0].ready is required"}
    bad = await env.agent("pull", {"sims": [sim(0), sim(0)]}, status=400)
    assert bad["error"]["message"] == "sims: a slot is listed twice"
    bad = await env.agent("release", {"ids": ["7"]}, status=400)
    assert bad["error"]["message"] == "ids must be integers"
    query = {"token": env.token, "sendto": NUMBERS[0], "body": "x"}
    for extra, message in [
        ({"pool": "nope"}, "Pool not found"),
        (
            {"pool": "all", "device_id": str(env.device_id)},
            "Give either device_id or pool, not both",
        ),
        ({}, "Parameter device_id is required"),
        ({"pool": "device:999999"}, "Device not found"),
        ({"device_id": str(env.device_id), "sim": "both"}, "Unsupported sim both"),
    ]:
        r = await env.client.get("/getdata/addsms", params={**query, **extra})
        assert (r.status, await r.json()) == (200, {"error": 1, "message": message}), extra


async def test_a_new_pool_message_wakes_only_devices_whose_sims_have_pool_room(env: Env) -> None:
    third, third_token = await env.gw.create_device(env.account, "third box")
    await pull(env, [sim(0, pool_room=0)])  # ready, but its SIM has no room for pool work
    await pull(env, [sim(0, pool_room=2)], env.other_token)
    await pull(env, [sim(0, pool_room=5), sim(1, pool_room=1)], third_token)
    pool = await env.gw.routing.pool_for_send(env.account, "all")
    one = [NewMessage(env.account.id, None, NUMBERS[0], "x", pool_id=pool.id)]
    # One message: the two devices with the most room, never the one without.
    assert await env.gw.routing.wake_for(one) == {third.id, env.other_device_id}
    await env.gw.store.touch_device(third.id, 0)  # gone: past agent_offline_seconds
    assert await env.gw.routing.wake_for(one * 3) == {env.other_device_id}
    assert await env.gw.routing.wake_for([]) == set()
