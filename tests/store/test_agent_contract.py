"""The agent protocol's store contract on both engines: leases, commits, reports, incoming SMS,
the sweeper, pools and late binding, webhook outbox, device settings and events, Idempotency-Key
records; and two stores on one database (two servers) never leasing one message twice."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from simhive.server.core.errors import Conflict, NotFound
from simhive.server.core.models import IncomingMessage, MessageFilter, NewMessage, ReportEvent
from simhive.server.core.pools import SimOffer
from simhive.server.core.status import Status
from simhive.server.store.agent_base import DeviceEvent
from simhive.server.store.base import Store
from tests.store.conftest import Raw

T0 = 1_000_000_000
NUMBER = "+4915752982212"
HOOK = "http://127.0.0.1:9/hook"


async def _owner(store: Store, devices: int = 1) -> tuple[int, list[int]]:
    account = await store.create_account("a@example.com", "x", "h1", "UTC", 1)
    ids = [(await store.create_device(account.id, f"d{i}", f"t{i}", 1)).id for i in range(devices)]
    return account.id, ids


async def _send(
    store: Store, account_id: int, device_id: int | None, n: int, **kw: Any
) -> list[int]:
    return await store.insert_messages(
        [NewMessage(account_id, device_id, NUMBER, f"m{i}", **kw) for i in range(n)], T0
    )


async def _status(store: Store, account_id: int, sms_id: int) -> int:
    message = await store.message_by_id(account_id, sms_id)
    assert message is not None
    return message.status


async def test_lease_commit_report_and_webhooks(store: Store) -> None:
    account_id, [dev] = await _owner(store)
    await store.update_device_settings(dev, {"webhook_status": HOOK, "webhook_secret": "s"})
    ids = await _send(store, account_id, dev, 3)
    assert await store.due_state(dev, T0) == (True, None)
    lease = await store.lease_due(dev, 2, "L1", T0 + 1, T0 + 100)
    assert [m.id for m in lease.messages] == ids[:2]
    assert [m.status for m in lease.messages] == [Status.TAKEN] * 2
    assert all(m.attempt == 1 for m in lease.messages)
    # a foreign lease id and an unknown message are rejected; the rest commits, twice alike
    assert await store.commit_lease(dev, "other", [ids[0]], T0 + 2) == ([], [ids[0]])
    for _ in range(2):
        assert await store.commit_lease(dev, "L1", [ids[0], ids[1], 999], T0 + 2) == (
            ids[:2], [999],
        )  # fmt: skip
    assert await _status(store, account_id, ids[0]) == Status.QUEUED
    sent = ReportEvent("e1", ids[0], "sent", T0 + 3, parts=((0, 17),))
    delivered = ReportEvent("e2", ids[0], "delivered", T0 + 4)
    failed = ReportEvent("e3", ids[1], "failed", T0 + 4, status=Status.NO_SERVICE, code="x")
    foreign = ReportEvent("e4", ids[2] + 1000, "sent", T0 + 4)
    assert await store.apply_events(dev, [sent, delivered, failed, foreign], T0 + 5) == [
        "e1", "e2", "e3",
    ]  # fmt: skip
    assert await store.apply_events(dev, [sent], T0 + 6) == ["e1"]  # applied once, answered again
    late = ReportEvent("e5", ids[0], "sent", T0 + 9)  # a status never moves backwards
    await store.apply_events(dev, [late], T0 + 9)
    first = await store.message_by_id(account_id, ids[0])
    assert first is not None and first.status == Status.DELIVERED and first.senttime == T0 + 3
    assert first.delivered_time == T0 + 4
    second = await store.message_by_id(account_id, ids[1])
    assert second is not None and second.status == Status.NO_SERVICE
    assert second.failure_code == "x"
    # one outbox row per status reached, written by the store itself, in order per message
    rows = await store.webhook_rows(dev)
    assert [(r["sms_id"], r["status"]) for r in rows] == [
        (ids[0], 6), (ids[0], 7), (ids[1], 10),
    ]  # fmt: skip
    jobs = await store.due_webhooks(T0 + 10, 10)
    assert [(j.message.id, j.status) for j in jobs] == [(ids[0], 6), (ids[1], 10)]
    assert jobs[0].secret == "s" and jobs[0].url == HOOK and jobs[0].timezone == "UTC"
    await store.webhook_delivered(jobs[0].id, T0 + 11)
    await store.webhook_failed(jobs[1].id, "HTTP 500", T0 + 50, T0 + 11)
    jobs = await store.due_webhooks(T0 + 12, 10)
    assert [(j.message.id, j.status) for j in jobs] == [(ids[0], 7)]
    await store.webhook_failed(jobs[0].id, "gone", None, T0 + 12)  # given up
    assert await store.next_webhook_time() == T0 + 50
    states = {(r["sms_id"], r["status"]): r["state"] for r in await store.webhook_rows()}
    assert states == {(ids[0], 6): "delivered", (ids[0], 7): "dead", (ids[1], 10): "pending"}
    assert await store.prune_webhooks(T0 + 1_000_000) == 2
    assert len(await store.webhook_rows()) == 1


async def test_one_report_moves_its_messages_event_by_event(store: Store) -> None:
    """The events of one report apply in order, each seeing what the earlier ones did: a
    repeated event id applies once, a late `sent` after `delivered` only fills in senttime,
    another device's message is neither applied nor accepted, and a commit answers each id on
    its own (committed, committed before, another lease's, not this device's)."""
    account_id, [dev, other] = await _owner(store, devices=2)
    ids = await _send(store, account_id, dev, 2)
    [theirs] = await _send(store, account_id, other, 1)
    await store.lease_due(dev, 2, "L1", T0 + 1, T0 + 100)
    await store.lease_due(other, 1, "L2", T0 + 1, T0 + 100)
    assert await store.commit_lease(dev, "L1", [ids[0]], T0 + 2) == ([ids[0]], [])
    assert await store.commit_lease(dev, "L1", [ids[1], ids[0], ids[1], theirs], T0 + 3) == (
        [ids[1], ids[0]], [theirs],
    )  # fmt: skip
    assert await store.commit_lease(dev, "L2", [ids[0]], T0 + 3) == ([], [ids[0]])
    delivered = ReportEvent("d", ids[0], "delivered", T0 + 5)
    sent = ReportEvent("s", ids[0], "sent", T0 + 4)
    failed = ReportEvent("f", ids[1], "failed", T0 + 6, status=Status.NO_SERVICE, code="x")
    late_failure = ReportEvent("n", ids[1], "not_delivered", T0 + 7)
    foreign = ReportEvent("t", theirs, "sent", T0 + 4)
    report = [delivered, sent, delivered, failed, foreign, late_failure, failed]
    assert await store.apply_events(dev, report, T0 + 8) == ["d", "s", "d", "f", "n", "f"]
    first = await store.message_by_id(account_id, ids[0])
    assert first is not None and first.status == Status.DELIVERED
    assert first.senttime == T0 + 4 and first.delivered_time == T0 + 5
    assert await _status(store, account_id, ids[1]) == Status.NO_SERVICE
    assert await _status(store, account_id, theirs) == Status.TAKEN
    assert [c.status for c in await store.message_history(ids[0])] == [2, 3, 7]
    assert [c.status for c in await store.message_history(ids[1])] == [2, 3, 10]
    # Answered again and applied no second time; the refused event is still open to its device.
    assert await store.apply_events(dev, [failed, late_failure, delivered], T0 + 9) == [
        "f", "n", "d",
    ]  # fmt: skip
    assert [c.status for c in await store.message_history(ids[1])] == [2, 3, 10]
    assert await store.apply_events(other, [foreign], T0 + 9) == ["t"]
    assert await _status(store, account_id, theirs) == Status.SENT
    assert await store.apply_events(dev, [], T0 + 10) == []


async def test_expired_leases_go_back_and_late_commits_are_refused(store: Store) -> None:
    account_id, [dev] = await _owner(store)
    ids = await _send(store, account_id, dev, 2)
    await store.lease_due(dev, 2, "L1", T0, T0 + 10)
    assert await store.due_state(dev, T0 + 5) == (False, T0 + 10)
    assert await store.expire_leases(T0 + 5) == set()
    assert await store.expire_leases(T0 + 11) == {dev}
    assert [await _status(store, account_id, i) for i in ids] == [Status.NEW] * 2
    assert await store.commit_lease(dev, "L1", ids, T0 + 12) == ([], ids)
    again = await store.lease_due(dev, 5, "L2", T0 + 13, T0 + 30)
    assert [m.attempt for m in again.messages] == [2, 2]
    # a pull returns its own device's expired leases before leasing
    third = await store.lease_due(dev, 5, "L3", T0 + 31, T0 + 50)
    assert [m.id for m in third.messages] == ids


async def test_release_leases_by_id_or_all_but_kept(store: Store) -> None:
    account_id, [dev] = await _owner(store)
    ids = await _send(store, account_id, dev, 3)
    await store.lease_due(dev, 1, "A", T0, T0 + 100)
    await store.lease_due(dev, 1, "B", T0, T0 + 100)
    await store.lease_due(dev, 1, "C", T0, T0 + 100)
    assert await store.release_leases(dev, T0 + 1, lease_ids=[]) == 0
    assert await store.release_leases(dev, T0 + 1, lease_ids=["A"]) == 1
    assert await store.release_leases(dev, T0 + 1, keep=["B"]) == 1
    assert [await _status(store, account_id, i) for i in ids] == [1, 2, 1]
    assert await store.commit_lease(dev, "A", [ids[0]], T0 + 2) == ([], [ids[0]])


async def test_incoming_is_stored_once_per_key_with_its_webhook(store: Store) -> None:
    account_id, [dev] = await _owner(store)
    await store.update_device_settings(dev, {"webhook_incoming": HOOK})
    msg = IncomingMessage("k1", 1, "+4917012345", "hello", sent_at=T0 - 5, parts=2)
    [(key, sms_id)] = await store.store_incoming(account_id, dev, [msg], T0)
    assert key == "k1"
    assert await store.store_incoming(account_id, dev, [msg], T0 + 1) == [("k1", sms_id)]
    stored = await store.message_by_id(account_id, sms_id)
    assert stored is not None and stored.status == 5 and stored.direction == "in"
    assert stored.sendto == "+4917012345" and stored.sim == 1
    [job] = await store.due_webhooks(T0 + 1, 10)
    assert (job.kind, job.message.id, job.sent_at) == ("incoming", sms_id, T0 - 5)


async def test_device_facts_sims_settings_and_events(store: Store) -> None:
    from simhive.server.core.models import DeviceFacts, Sim

    account_id, [dev] = await _owner(store)
    sims = [Sim(dev, 1, number="+492", country_iso="DE"), Sim(dev, 0, number="+491")]
    await store.update_device_facts(dev, DeviceFacts(model="SIM800C"), sims, T0)
    device = await store.device_by_id(dev)
    assert device is not None and device.model == "SIM800C" and device.number == "+491"
    assert device.lastseen == T0
    got = await store.sims_of([dev])
    assert [(s.slot, s.country_iso) for s in got[dev]] == [(0, ""), (1, "de")]
    await store.replace_sims(dev, [Sim(dev, 0)], T0 + 1)
    assert len((await store.sims_of([dev]))[dev]) == 1
    await store.update_device_settings(dev, {"sim_per_hour": 7, "webhook_status": ""})
    settings = await store.device_agent_settings(dev)
    assert settings is not None and settings.sim_per_hour == 7 and settings.webhook_status is None
    with pytest.raises(ValueError):
        await store.update_device_settings(dev, {"title": "x"})
    events = [DeviceEvent(T0 + i, "modem", f"s{i}", slot=0) for i in range(3)]
    await store.add_device_events(dev, events, T0)
    assert await store.device_events(dev, limit=2) == events[1:]


async def test_idempotency_keys(store: Store) -> None:
    account_id, _ = await _owner(store)
    assert await store.claim_key(account_id, "k", "fp", T0, 0) is None
    held = await store.claim_key(account_id, "k", "fp2", T0 + 1, 0)
    assert held is not None and (held.fingerprint, held.answer) == ("fp", None)
    await store.answer_key(account_id, "k", '{"ok":1}')
    held = await store.claim_key(account_id, "k", "fp", T0 + 2, 0)
    assert held is not None and held.answer == '{"ok":1}'
    await store.release_key(account_id, "k")  # answered: stays
    assert await store.claim_key(account_id, "k", "fp", T0 + 3, 0) is not None
    assert await store.claim_key(account_id, "k", "fp", T0 + 4, T0 + 1) is None  # expired first
    await store.release_key(account_id, "k")
    assert await store.claim_key(account_id, "k", "fp", T0 + 5, 0) is None


async def test_a_refused_commit_fails_alone(store: Store, raw: Raw, engine: str) -> None:
    """Commits arriving together (on SQLite: one group transaction, where a commit runs without
    a savepoint of its own) each stand alone: when the database refuses one (a trigger here),
    its caller gets the error, its message stays leased, the others are committed."""
    account_id, devices = await _owner(store, 4)
    leases = []
    for dev in devices:
        await _send(store, account_id, dev, 1)
        leases.append(await store.lease_due(dev, 1, f"L{dev}", T0, T0 + 100))
    refused = leases[2].messages[0].id
    if engine == "sqlite":
        await raw.rows(
            "CREATE TRIGGER refuse BEFORE UPDATE OF status ON messages"
            f" WHEN old.id = {refused} AND new.status = 3 BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    else:
        await raw.rows(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END $$"
        )
        await raw.rows(
            "CREATE TRIGGER refuse BEFORE UPDATE OF status ON messages FOR EACH ROW"
            f" WHEN (OLD.id = {refused} AND NEW.status = 3) EXECUTE FUNCTION refuse()"
        )
    results = await asyncio.gather(
        *(
            store.commit_lease(dev, lease.lease_id, [m.id for m in lease.messages], T0 + 1)
            for dev, lease in zip(devices, leases, strict=True)
        ),
        return_exceptions=True,
    )
    assert isinstance(results[2], Exception) and "refused" in str(results[2]), results
    for i in (0, 1, 3):
        assert results[i] == ([leases[i].messages[0].id], [])
        assert await _status(store, account_id, leases[i].messages[0].id) == Status.QUEUED
    assert await _status(store, account_id, refused) == Status.TAKEN


def _offer(slot: int, room: int = 5, pool_room: int = 5) -> SimOffer:
    return SimOffer(slot, True, room, pool_room)


async def test_due_state_sims_says_what_is_due_or_when_the_next_is(store: Store) -> None:
    """Due now: (True, None), whatever else waits; nothing due: the earliest of the SIM's next
    pinned message, its pools' next message and its device's next lease expiry."""
    account_id, [dev] = await _owner(store)
    pool = await store.implicit_pool(account_id, None, T0)
    assert await store.due_state_sims(dev, account_id, [_offer(0)], T0) == (False, None)
    await _send(store, account_id, None, 3, pool_id=pool.id, timetosend=T0 + 300)
    await _send(store, account_id, dev, 2, timetosend=T0 + 200)
    assert await store.due_state_sims(dev, account_id, [_offer(0)], T0) == (False, T0 + 200)
    pool_only = [_offer(0, room=5, pool_room=5)]
    assert await store.due_state_sims(dev, account_id, pool_only, T0 + 250) == (True, None)
    await store.offer_sims(dev, pool_only, T0 + 250)
    lease, _ = await store.lease_sims(dev, pool_only, 2, "L1", T0 + 250, T0 + 280, T0,
                                      random.random)  # fmt: skip
    assert len(lease.messages) == 2  # the pinned two; the pool's three are not due yet
    assert await store.due_state_sims(dev, account_id, pool_only, T0 + 260) == (False, T0 + 280)
    # a lease expiring now has not expired yet, one a microsecond past has (reads only)
    assert await store.due_state_sims(dev, account_id, pool_only, T0 + 280) == (False, T0 + 280)
    assert await store.due_state_sims(dev, account_id, pool_only, T0 + 281) == (True, None)
    no_pool = [_offer(0, room=5, pool_room=0)]
    await store.commit_lease(dev, "L1", [m.id for m in lease.messages], T0 + 261)
    assert await store.due_state_sims(dev, account_id, pool_only, T0 + 262) == (False, T0 + 300)
    assert await store.due_state_sims(dev, account_id, no_pool, T0 + 262) == (False, None)
    assert await store.due_state_sims(dev, account_id, pool_only, T0 + 299) == (False, T0 + 300)
    assert await store.due_state_sims(dev, account_id, pool_only, T0 + 300) == (True, None)


async def test_pool_messages_bind_to_the_asking_sim(store: Store) -> None:
    account_id, [a, b] = await _owner(store, 2)
    pool = await store.implicit_pool(account_id, None, T0)
    assert (pool.name, pool.kind) == ("all", "account")
    assert (await store.implicit_pool(account_id, None, T0)).id == pool.id
    ids = await _send(store, account_id, None, 4, pool_id=pool.id)
    assert await store.pool_waiting(pool.id) == 4
    for dev in (a, b):
        await store.offer_sims(dev, [_offer(0, room=3, pool_room=3)], T0)
    assert await store.sim_readiness(a, 0) == (True, "")
    assert await store.pool_wake_candidates(pool.id, T0 - 1, 5) == {a, b}
    assert await store.due_state_sims(a, account_id, [_offer(0)], T0) == (True, None)
    lease, wake = await store.lease_sims(a, [_offer(0, 3, 3)], 10, "LA", T0, T0 + 100, T0 - 1,
                                         random.random)  # fmt: skip
    assert [m.id for m in lease.messages] == ids[:3]
    assert {(m.device_id, m.sim, m.pool) for m in lease.messages} == {(a, 0, "all")}
    assert wake == {b}  # one message still waits: the pool's other device may take it
    lease_b, _ = await store.lease_sims(b, [_offer(0)], 10, "LB", T0, T0 + 100, T0 - 1,
                                        random.random)  # fmt: skip
    assert [m.id for m in lease_b.messages] == ids[3:]
    # a SIM that is not ready takes nothing, and says why
    await store.offer_sims(a, [SimOffer(0, False, reason="no network")], T0 + 1)
    assert await store.sim_readiness(a, 0) == (False, "no network")
    # the agent hands back what it has not started: pool messages go back unbound
    assert await store.commit_lease(a, "LA", ids[:1], T0 + 2) == (ids[:1], [])
    released, kept, woken = await store.release_messages(a, ids[:2], T0 + 3)
    assert (released, kept) == (ids[:2], []) and woken == {a, b}
    back = await store.message_by_id(account_id, ids[0])
    assert back is not None and back.device_id is None and back.status == Status.NEW
    # expired pool leases go back to the pool, and the pool's devices are woken
    assert await store.expire_leases(T0 + 101) == {a, b}
    assert await store.pool_waiting(pool.id) == 4


async def test_full_rotation_gives_each_sim_its_turns(store: Store) -> None:
    account_id, [a, b] = await _owner(store, 2)
    pool = await store.create_pool(account_id, "rot", "full", False, T0)
    with pytest.raises(Conflict):
        await store.create_pool(account_id, "rot", "full", False, T0)
    await store.set_pool_sim(pool.id, a, 0, 2)
    await store.set_pool_sim(pool.id, b, 0, 1)
    await _send(store, account_id, None, 6, pool_id=pool.id)
    for dev in (a, b):
        await store.offer_sims(dev, [_offer(0)], T0)
    taken = []
    for step in range(6):
        dev = (a, b)[step % 2]
        lease, _ = await store.lease_sims(dev, [_offer(0, 1, 1)], 1, f"L{step}", T0, T0 + 100,
                                          T0 - 1, random.random)  # fmt: skip
        taken.append(len(lease.messages))
    # a: 2 turns per cycle, b: 1; when b asks again after both used theirs, a new cycle
    # starts with b's turn, and b then waits for a's two
    assert taken == [1, 1, 1, 1, 1, 0]
    assert [(s.device_id, s.weight) for s in await store.pool_sims(pool.id)] == [(a, 2), (b, 1)]
    assert (await store.pool_by_name(account_id, "rot")).cycle == 1  # type: ignore[union-attr]
    with pytest.raises(Conflict):
        await store.delete_pool(pool.id)  # messages of it are unsent
    await store.remove_pool_sim(pool.id, b, 0)
    with pytest.raises(NotFound):
        await store.remove_pool_sim(pool.id, b, 0)
    await store.update_pool(pool.id, strategy="partial", sticky=True)
    assert [(p.name, p.strategy, p.sticky) for p in await store.list_pools(account_id)] == [
        ("rot", "partial", True),
    ]


async def test_sticky_pool_keeps_a_recipient_on_its_sim(store: Store) -> None:
    account_id, [a, b] = await _owner(store, 2)
    pool = await store.create_pool(account_id, "st", "partial", True, T0)
    for dev in (a, b):
        await store.set_pool_sim(pool.id, dev, 0, 1)
        await store.offer_sims(dev, [_offer(0)], T0)
    [first] = await _send(store, account_id, None, 1, pool_id=pool.id)
    lease, _ = await store.lease_sims(a, [_offer(0)], 5, "L1", T0, T0 + 100, T0 - 1, random.random)
    assert [m.id for m in lease.messages] == [first]
    [second] = await _send(store, account_id, None, 1, pool_id=pool.id)
    lease, wake = await store.lease_sims(b, [_offer(0)], 5, "L2", T0, T0 + 100, T0 - 1,
                                         random.random)  # fmt: skip
    assert lease.messages == [] and a in wake  # it waits for the SIM that texted NUMBER
    lease, _ = await store.lease_sims(a, [_offer(0)], 5, "L3", T0, T0 + 100, T0 - 1, random.random)
    assert [m.id for m in lease.messages] == [second]


async def test_two_servers_never_lease_one_message_twice(make_store: Any, store: Store) -> None:
    # Two stores on one database are two servers; twelve devices pull one pool at once.
    other: Store = make_store()
    await other.open()
    try:
        account = await store.create_account("a@example.com", "x", "h1", "UTC", 1)
        devices = [(await store.create_device(account.id, f"d{i}", f"t{i}", 1)).id
                   for i in range(12)]  # fmt: skip
        pool = await store.implicit_pool(account.id, None, T0)
        pinned = await _send(store, account.id, devices[0], 20)
        ids = set(await _send(store, account.id, None, 200, pool_id=pool.id)) | set(pinned)
        for dev in devices:
            await store.offer_sims(dev, [_offer(0, 50, 50)], T0)

        async def pull(s: Store, dev: int, n: int) -> list[int]:
            lease, _ = await s.lease_sims(dev, [_offer(0, 50, 50)], 50, f"L{dev}-{n}", T0,
                                          T0 + 100, T0 - 1, random.random)  # fmt: skip
            return [m.id for m in lease.messages]

        leased: list[int] = []
        for n in range(3):
            rounds = await asyncio.gather(
                *(pull((store, other)[i % 2], dev, n) for i, dev in enumerate(devices))
            )
            leased += [i for r in rounds for i in r]
        assert len(leased) == len(set(leased)), "a message was leased twice"
        assert set(leased) == ids
        assert await store.count_messages(MessageFilter(account.id, status=Status.TAKEN)) == 220
    finally:
        await other.close()


async def test_the_ids_of_one_lease_commit_one_call_at_a_time_as_claims_do(store: Store) -> None:
    """Commit = claim (docs/routing.md): the agent commits a lease's pool messages one claim at a
    time, just before each send. Each id is judged on its own; a repeat answers the same; once
    the lease expired and the sweeper put the rest back, their claims are rejected."""
    account_id, [dev] = await _owner(store)
    ids = await _send(store, account_id, dev, 3)
    await store.lease_due(dev, 3, "L1", T0 + 1, T0 + 100)
    assert await store.commit_lease(dev, "L1", [ids[0]], T0 + 2) == ([ids[0]], [])
    assert await store.commit_lease(dev, "L1", [ids[1]], T0 + 3) == ([ids[1]], [])
    assert await store.commit_lease(dev, "L1", [ids[0]], T0 + 4) == ([ids[0]], [])  # lost answer
    assert await _status(store, account_id, ids[2]) == Status.TAKEN  # not claimed yet
    await store.expire_leases(T0 + 101)
    assert await _status(store, account_id, ids[2]) == Status.NEW  # back in the queue
    assert await store.commit_lease(dev, "L1", [ids[2]], T0 + 102) == ([], [ids[2]])
    assert [await _status(store, account_id, i) for i in ids[:2]] == [Status.QUEUED] * 2


async def test_every_agent_call_stamps_lastseen_when_it_returns(store: Store) -> None:
    """Each agent call leaves its device's `lastseen` at its own time once it has returned,
    also when several calls of different devices share one transaction."""
    account_id, devs = await _owner(store, 3)
    dev = devs[0]

    async def seen() -> int | None:
        device = await store.device_by_id(dev)
        assert device is not None
        return device.lastseen

    [sms_id] = await _send(store, account_id, dev, 1)
    await store.touch_device(dev, T0 + 1)
    assert await seen() == T0 + 1
    await store.offer_sims(dev, [_offer(0)], T0 + 2)
    assert await seen() == T0 + 2
    await store.lease_sims(dev, [_offer(0)], 5, "L", T0 + 3, T0 + 100, T0 - 60, random.random)
    assert await seen() == T0 + 3
    assert await store.commit_lease(dev, "L", [sms_id], T0 + 4) == ([sms_id], [])
    assert await seen() == T0 + 4
    event = ReportEvent("e1", sms_id, "sent", T0 + 5)
    assert await store.apply_events(dev, [event], T0 + 5) == ["e1"]
    assert await seen() == T0 + 5
    await store.release_messages(dev, [sms_id], T0 + 6)
    assert await seen() == T0 + 6
    await store.store_incoming(account_id, dev, [IncomingMessage("k", 0, NUMBER, "hi")], T0 + 7)
    assert await seen() == T0 + 7
    await store.replace_sims(dev, None, T0 + 8)
    assert await seen() == T0 + 8
    # Calls of three devices at once (one group transaction on SQLite).
    await asyncio.gather(
        *(store.commit_lease(d, "none", [], T0 + 10 + i) for i, d in enumerate(devs))
    )
    stamped = {d.id: d.lastseen for d in await store.list_devices(account_id)}
    assert stamped == {devs[0]: T0 + 10, devs[1]: T0 + 11, devs[2]: T0 + 12}
