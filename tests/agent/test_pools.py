"""SIM pools on the agent side: per-SIM pull room (`sims`), pool_room, a parked poll replaced
when the view goes stale, pool messages handed back (`release`), the journal's upgrade, and
the fallback to a server from before pools. In one process, with a fake Modem and the in-test
protocol server (tests/agent/fakeserver.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from simhive.agent.client import AgentClient, ServerAway
from simhive.agent.dispatcher import ClaimCallback, Dispatcher, DispatchPolicy
from simhive.agent.http import HttpClient
from simhive.agent.journal import Journal, LeasedMessage
from simhive.agent.modem.base import ModemState, StateChange
from simhive.agent.pacing import Pacer, SimLimits
from simhive.agent.runner import DeviceRunner
from simhive.agent.simview import SimReadiness, SimsView, SlotView
from simhive.agent.sync import Sync
from tests.agent.fakes import FakeModem, wait_for
from tests.agent.fakeserver import FakeAgentServer
from tests.agent.test_runner import agent_cfg

DEV = "hall"
UNPACED: dict[str, Any] = {
    "min_interval_seconds": 0, "per_minute": None, "per_hour": None, "per_day": None,
}  # fmt: skip


def sim_settings(server: FakeAgentServer, slot: int, **limits: Any) -> None:
    server.settings["sims"][str(slot)] = {**UNPACED, **limits}


@asynccontextmanager
async def runner_for(
    server: FakeAgentServer, journal: Journal, tmp: Path, modem: FakeModem, **dev: object
) -> AsyncIterator[DeviceRunner]:
    cfg = agent_cfg(server, tmp, server.add_device(260), **dev)
    async with HttpClient() as session:
        runner = DeviceRunner(cfg.devices[0], cfg, journal, modem, session)
        runner.handback.after_seconds = 0.2  # the grace before a hand-back, short for tests
        await runner.start()
        try:
            yield runner
        finally:
            await runner.stop()


async def states(journal: Journal, ids: list[int]) -> list[str | None]:
    return [await journal.message_state(DEV, i) for i in ids]


# -- per-SIM room --------------------------------------------------------------------------


async def test_a_full_paced_sim_does_not_stop_the_other_sim_getting_work(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    """SIM 1's queue is full (pull_max 3) and paced to one send an hour; an urgent message for
    SIM 2 is pulled and sent at once instead of waiting behind the device's total backlog."""
    server.settings["pull_max"] = 3
    server.settings["long_poll_seconds"] = 30
    sim_settings(server, 0, min_interval_seconds=3600)
    first = [await server.add(260, f"+49151000000{i:02d}", sim=0) for i in range(6)]
    modem = FakeModem(slots=[0, 1])
    async with runner_for(server, journal, tmp_path, modem, ports=("/dev/a", "/dev/b")) as r:
        await wait_for(lambda: len(modem.submits) == 1, what="SIM 1's first send")
        await wait_for(lambda: r.sync.per_sim and len(server.pulls) >= 2, what="a parked pull")
        await wait_for(lambda: [server.messages[i].status for i in first] == [6, 3, 3, 3, 1, 1],
                       what="SIM 1's queue full")  # fmt: skip
        assert (await journal.slot_loads(DEV))[0].held == 3  # 3 of pull_max 3 wait there
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        urgent = await server.add(260, "+4915199999999", sim=1, urgent=True)
        await wait_for(lambda: server.messages[urgent].status == 6, limit=10, what="SIM 2 sent")
        assert loop.time() - t0 < 2.0
    assert [s.slot for s in modem.submits] == [0, 1]
    assert sum(server.messages[i].status == 1 for i in first) == 2  # not hoarded
    last = server.pulls[-1]["sims"]
    assert {s["slot"]: s["ready"] for s in last} == {0: True, 1: True}


def make_dispatcher(
    journal: Journal,
    modem: FakeModem,
    slots: list[int],
    limits: SimLimits,
    clock: Any,
    claim: ClaimCallback | None = None,
) -> Dispatcher:
    pacers = {s: Pacer(limits, clock=clock, rand=lambda a, b: b) for s in slots}
    return Dispatcher(device=DEV, modem=modem, journal=journal, pacers=pacers,
                      policy=DispatchPolicy(), claim=claim, clock=clock)  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def commit(journal: Journal, msgs: list[LeasedMessage]) -> None:
    await journal.add_leased(DEV, "L1", msgs, 1.0)
    await journal.apply_commit(DEV, "L1", [m.id for m in msgs], [])


async def test_pool_room_follows_pacing_queue_pause_and_modem_state(journal: Journal) -> None:
    clock = Clock()
    modem = FakeModem(slots=[0, 1])
    modem.set_state(ModemState.READY)
    paced = make_dispatcher(journal, modem, [0], SimLimits(min_interval_seconds=10), clock)
    unpaced = make_dispatcher(journal, modem, [1], SimLimits(0, None, None, None, None), clock)
    view = SimReadiness(device=DEV, modem=modem, journal=journal,
                        dispatchers=[paced, unpaced], clock=clock)  # fmt: skip

    v = await view.view(15)
    assert v.wire() == [
        {"slot": 0, "ready": True, "room": 15, "pool_room": 1},  # idle paced SIM: one
        {"slot": 1, "ready": True, "room": 15, "pool_room": 15},  # idle unpaced SIM: all
    ]
    paced.state[0].pacer.record_send()  # it just sent: 10 s until the next
    await commit(journal, [LeasedMessage(i, "+49151", "x", 1, False) for i in (1, 2, 3)])
    v = await view.view(15)
    assert v.get(0) == SlotView(0, True, 15, 0)
    assert v.get(1) == SlotView(1, True, 12, 12)  # 3 waiting here: 3 fewer of both
    assert v.changes_at == clock.now + 9.0  # then the paced SIM can start one within 1 s
    clock.now += 9.5
    assert (await view.view(15)).get(0) == SlotView(0, True, 15, 1)
    unpaced.state[1].send_seconds = 0.4  # a submit takes 0.4 s here: 3 fit in a second...
    assert (await view.view(15)).get(1) == SlotView(1, True, 12, 0)  # ...and 3 wait already

    paced.state[0].paused_until = clock.now + 600
    paced.state[0].last_error = "CMS 38 network out of order"
    s0 = (await view.view(15)).get(0)
    assert s0 is not None and not s0.ready and "paused" in s0.reason and "CMS 38" in s0.reason
    assert s0.wire() == {"slot": 0, "ready": False, "reason": s0.reason}

    modem.set_state(ModemState.DISCONNECTED)
    view.note_state("port closed")
    v = await view.view(15)
    assert [(s.ready, s.reason) for s in v.slots] == [
        (False, "modem disconnected (port closed)"),
        (False, "modem disconnected (port closed)"),
    ]


async def test_the_inactive_sim_of_a_single_standby_modem_gets_pool_work_only_when_idle(
    journal: Journal,
) -> None:
    clock = Clock()
    modem = FakeModem(slots=[0, 1])
    modem.set_state(ModemState.READY)
    disp = make_dispatcher(journal, modem, [0, 1], SimLimits(0, None, None, None, None), clock)
    disp.active_slot = 0
    view = SimReadiness(device=DEV, modem=modem, journal=journal, dispatchers=[disp],
                        clock=clock)  # fmt: skip
    v = await view.view(15)
    # Both can take work (the inactive one can be switched to); pool work for the inactive
    # SIM is one message at most, and only while the radio has nothing to do.
    assert [s.wire() for s in v.slots] == [
        {"slot": 0, "ready": True, "room": 15, "pool_room": 15},
        {"slot": 1, "ready": True, "room": 15, "pool_room": 1},
    ]
    await commit(journal, [LeasedMessage(7, "+49151", "x", 0, False)])
    v = await view.view(15)
    assert v.get(0) == SlotView(0, True, 14, 14) and v.get(1) == SlotView(1, True, 15, 0)
    view.note_sims(await modem.sim_info())  # what it read of SIM 2 when it was active...
    from dataclasses import replace

    view.note_sims([replace((await modem.sim_info())[1], present=False)])  # ...no SIM there
    s1 = (await view.view(15)).get(1)
    assert s1 is not None and not s1.ready and "no SIM" in s1.reason


class TwoPortModem(FakeModem):
    """Two SIMs, each on its own port (agent/modem/dualport.py): one state per port."""

    def __init__(self) -> None:
        super().__init__(slots=[0, 1])
        self.ports = {0: (ModemState.READY, "registered"), 1: (ModemState.READY, "registered")}

    def slot_state(self, slot: int) -> tuple[ModemState, str]:
        return self.ports[slot]


async def test_one_port_down_leaves_the_other_sim_of_a_two_port_device_ready(
    journal: Journal,
) -> None:
    clock = Clock()
    modem = TwoPortModem()
    modem.set_state(ModemState.DISCONNECTED)  # the worse of the two ports, as DualPortModem
    modem.ports[0] = (ModemState.DISCONNECTED, "cannot open: no such port")
    limits = SimLimits(0, None, None, None, None)
    disps = [make_dispatcher(journal, modem, [s], limits, clock) for s in (0, 1)]
    view = SimReadiness(device=DEV, modem=modem, journal=journal, dispatchers=disps,
                        clock=clock)  # fmt: skip
    assert (await view.view(15)).wire() == [
        {"slot": 0, "ready": False, "reason": "modem disconnected (cannot open: no such port)"},
        {"slot": 1, "ready": True, "room": 15, "pool_room": 15},
    ]


# -- a parked poll is not left stale --------------------------------------------------------


async def test_a_parked_poll_is_replaced_as_soon_as_the_modem_goes_down(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    server.settings["long_poll_seconds"] = 30
    modem = FakeModem()
    async with runner_for(server, journal, tmp_path, modem) as r:
        await wait_for(lambda: any("sims" in p for p in server.pulls), what="a per-SIM pull")
        await asyncio.sleep(0.3)  # parked at the server now
        n = len(server.pulls)
        modem.set_state(ModemState.DISCONNECTED)
        await modem.emit(StateChange(ModemState.DISCONNECTED, "port closed"))
        await wait_for(lambda: len(server.pulls) > n, limit=3, what="a fresh pull at once")
        assert server.pulls[n]["sims"] == [
            {"slot": 0, "ready": False, "reason": "modem disconnected (port closed)"}
        ]
        assert server.sim_reasons[(260, 0)] == "modem disconnected (port closed)"
        assert r.sync.repolls >= 1
        modem.set_state(ModemState.READY)
        await modem.emit(StateChange(ModemState.READY, "registered"))
        await wait_for(lambda: server.pulls[-1]["sims"][0]["ready"], limit=3, what="ready again")


async def test_a_parked_poll_waits_without_a_task_of_its_own(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    """While the per-SIM poll is parked, its loop waits for the answer or a view change in
    its own task (eventwait.wait_flags): no Flag.wait() task per wait, as asyncio.wait needed."""
    server.settings["long_poll_seconds"] = 30
    modem = FakeModem()
    async with runner_for(server, journal, tmp_path, modem):
        await wait_for(lambda: any("sims" in p for p in server.pulls), what="a per-SIM pull")
        await asyncio.sleep(0.3)  # parked at the server now
        waits = [t for t in asyncio.all_tasks() if "Flag.wait" in repr(t.get_coro())]
        assert waits == []


# -- hand-back ------------------------------------------------------------------------------


async def test_pool_messages_go_back_when_the_modem_goes_down_and_pinned_ones_stay(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    server.pools["otp"] = [(260, 0)]
    pool = [await server.add_pool_message("otp", f"+49151000000{i}") for i in range(3)]
    pinned = await server.add(260, "+4915100000009")
    modem = FakeModem()
    modem.gate = asyncio.Event()  # the first submit hangs: the rest waits for its claim
    async with runner_for(server, journal, tmp_path, modem) as runner:
        await asyncio.wait_for(modem.in_send.wait(), 15)
        await wait_for(lambda: server.messages[pinned].status == 3, what="pinned committed")
        rest = pool[1:]  # pool[0] is being submitted: it may reach the network, never back
        # Commit = claim: only the message on the radio is committed; the rest is leased.
        assert await states(journal, pool) == ["dispatching", "leased", "leased"]
        assert [server.messages[i].status for i in pool] == [3, 2, 2]
        server.fail["release"] = 2  # the server is away for the first two tries
        modem.set_state(ModemState.DISCONNECTED)
        await modem.emit(StateChange(ModemState.DISCONNECTED, "port closed"))
        await wait_for(lambda: server.calls.count("release") >= 1, what="a release try")
        assert await states(journal, rest) == ["releasing", "releasing"]
        await wait_for(lambda: server.messages[rest[-1]].status == 1, what="released at last")
        assert server.releases[0] == {
            "ids": rest, "reason": "SIM 1: modem disconnected (port closed)"
        }  # fmt: skip
        await wait_for(lambda: runner.handback.released == 2, what="the journal forgot them")
        assert await states(journal, rest) == [None, None]
        assert all(server.messages[i].status == 1 and server.messages[i].sim == -1 for i in rest)
        assert server.messages[pool[0]].status == 3
        assert await journal.message_state(DEV, pinned) == "committed"  # waits for its SIM
        modem.gate.set()
    assert [s.number for s in modem.submits] == [server.messages[pool[0]].to]


async def test_releasing_rows_left_by_a_crash_are_released_at_start_and_never_sent(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    server.pools["bulk"] = [(260, 0)]
    ids = [await server.add_pool_message("bulk", f"+49151000000{i}") for i in range(2)]
    token = server.add_device(260)
    async with HttpClient() as session:
        client = AgentClient(server.url, token, session)
        answer = await client.pull(
            15, 0, [], [{"slot": 0, "ready": True, "room": 15, "pool_room": 15}]
        )
        lease = answer["lease_id"]
        msgs = [LeasedMessage(m["id"], m["to"], m["body"], m["sim"], False, m["pool"])
                for m in answer["messages"]]  # fmt: skip
        await journal.add_leased(DEV, lease, msgs, 1.0)
        await journal.apply_commit(DEV, lease, (await client.commit(lease, ids))["committed"], [])
    # The crashed life had marked them, and the server never heard of it.
    assert sorted(await journal.mark_releasing(DEV, [], "SIM 1: modem disconnected", 2.0)) == ids
    server.pools["bulk"] = []  # once back in the pool they are for other devices' SIMs
    modem = FakeModem()
    async with runner_for(server, journal, tmp_path, modem) as runner:
        await wait_for(lambda: runner.handback.released == 2, what="released at start")
        assert await states(journal, ids) == [None, None]
        await asyncio.sleep(0.3)
    assert modem.submits == []
    assert server.releases[0] == {"ids": ids, "reason": "SIM 1: modem disconnected"}
    assert all(server.messages[i].status == 1 for i in ids)


async def test_a_graceful_stop_hands_pool_messages_back_and_keeps_pinned_ones(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    server.pools["otp"] = [(260, 0)]
    pool = [await server.add_pool_message("otp", f"+49151000000{i}") for i in range(3)]
    pinned = await server.add(260, "+4915100000009")
    modem = FakeModem()
    modem.gate = asyncio.Event()
    async with runner_for(server, journal, tmp_path, modem) as runner:
        await asyncio.wait_for(modem.in_send.wait(), 15)
        await wait_for(lambda: server.messages[pinned].status == 3, what="all committed")
        stopping = asyncio.create_task(runner.stop())
        await asyncio.sleep(0.1)
        modem.gate.set()  # the message in flight finishes; nothing else starts
        await asyncio.wait_for(stopping, 30)
    assert [s.number for s in modem.submits] == [server.messages[pool[0]].to]
    assert server.releases == [{"ids": pool[1:], "reason": "agent stopping"}]
    assert all(server.messages[i].status == 1 for i in pool[1:])
    assert server.messages[pool[0]].status == 6
    assert await journal.message_state(DEV, pinned) == "committed"


# -- urgent first on a SIM, whatever the kind -------------------------------------------------


async def test_an_urgent_pool_message_overtakes_pinned_ones_on_its_sim(journal: Journal) -> None:
    await commit(journal, [
        LeasedMessage(1, "+49151000001", "pinned", 0, False),
        LeasedMessage(2, "+49151000002", "pool", 0, True, "otp"),
        LeasedMessage(3, "+49151000003", "pool, not urgent", 0, False, "otp"),
    ])  # fmt: skip
    modem = FakeModem()
    modem.set_state(ModemState.READY)
    disp = make_dispatcher(journal, modem, [0], SimLimits(0, None, None, None, None), Clock())
    task = asyncio.create_task(disp.run())
    await wait_for(lambda: len(modem.submits) == 3, what="all three sent")
    disp.stop()
    await task
    assert [s.text for s in modem.submits] == ["pool", "pinned", "pool, not urgent"]


# -- the journal ----------------------------------------------------------------------------

OLD_OUTBOX = """
CREATE TABLE outbox (
    device TEXT NOT NULL, id INTEGER NOT NULL, slot INTEGER NOT NULL, to_number TEXT NOT NULL,
    body TEXT NOT NULL, urgent INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('leased', 'committed', 'dispatching', 'sent',
        'failed', 'unknown', 'delivered', 'not_delivered')),
    lease_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL, updated REAL NOT NULL, last_error TEXT, PRIMARY KEY (device, id));
CREATE INDEX outbox_due ON outbox (device, state, slot, urgent, next_attempt);
INSERT INTO outbox (device, id, slot, to_number, body, urgent, state, lease_id, created, updated)
    VALUES ('hall', 5, 1, '+49151', 'from before pools', 1, 'committed', 'L0', 1.0, 1.0);
"""


async def test_a_journal_from_before_pools_is_upgraded_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_OUTBOX)
    j = Journal(path)
    await j.open()
    try:
        m = await j.next_due(DEV, 1, 10.0)
        assert m is not None and (m.id, m.body, m.urgent) == (5, "from before pools", True)
        await j.add_leased(DEV, "L1", [LeasedMessage(6, "+49152", "pool", 0, False, "otp")], 2.0)
        await j.apply_commit(DEV, "L1", [6], [])
        assert await j.mark_releasing(DEV, [], "agent stopping", 3.0) == [6]  # 5 is pinned
        assert await j.message_state(DEV, 6) == "releasing"
        assert await j.next_due(DEV, 0, 10.0) is None  # a releasing row is never dispatched
        assert not await j.begin_dispatch(DEV, 6, 4.0)
        loads = await j.slot_loads(DEV)
        assert (loads[0].held, loads[0].queued, loads[1].held) == (1, 0, 1)
    finally:
        await j.close()
    j = Journal(path)  # a second open finds it up to date and changes nothing
    await j.open()
    try:
        assert await j.message_state(DEV, 6) == "releasing"
    finally:
        await j.close()


# -- an old server ---------------------------------------------------------------------------


async def test_a_server_from_before_pools_gets_per_device_pulls(
    server: FakeAgentServer, journal: Journal
) -> None:
    server.refuse_sims = True
    a = await server.add(260, "+4915100000001")
    fixed = SimsView((SlotView(0, True, 15, 15),))

    async def sims_view(pull_max: int) -> SimsView:
        return fixed

    async def hello_payload() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return {"title": DEV}, []

    async def no_sims() -> list[dict[str, Any]] | None:
        return None

    async with HttpClient() as session:
        sync = Sync(device=DEV, client=AgentClient(server.url, server.add_device(260), session),
                    journal=journal, slots=[0], hello_payload=hello_payload,
                    sims_payload=no_sims, on_settings=lambda s: None, on_work=lambda: None,
                    sims_view=sims_view)  # fmt: skip
        await sync.hello()
        assert await sync.pull_once() == 1
        assert await sync.pull_once() == 0
    assert [("sims" in p) for p in server.pulls] == [True, False, False]
    assert not sync.per_sim and server.messages[a].status == 3


# -- the docs say what the code does ----------------------------------------------------------


def test_docs_state_the_grace_gather_time_horizon_and_switch_guess() -> None:
    from simhive.agent import dispatcher, handback, pull, simview

    doc = (Path(__file__).resolve().parents[2] / "docs" / "agent.md").read_text()
    text = " ".join(doc.split())
    assert f"has not been ready for {handback.HANDBACK_AFTER_SECONDS:g} s in a row" in text
    assert f"looks again, {pull.REPOLL_GATHER_SECONDS * 1000:g} ms later" in text
    assert simview.HORIZON_SECONDS == 1.0 and "can *start* within about a second" in text
    assert f"(measured on this modem; {dispatcher.SWITCH_SECONDS_GUESS:g} s until then)" in text


async def test_a_sim_going_down_is_told_again_after_a_failed_pull(
    server: FakeAgentServer, journal: Journal
) -> None:
    """No SIM has room, so the agent pulls only to tell the server a SIM went down; if that
    pull fails, the next one must still tell it."""
    down = SimsView((SlotView(0, False, reason="modem disconnected (port closed)"),))

    async def sims_view(pull_max: int) -> SimsView:
        return down

    async def hello_payload() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return {"title": DEV}, []

    async def no_sims() -> list[dict[str, Any]] | None:
        return None

    server.settings["long_poll_seconds"] = 0
    async with HttpClient() as session:
        sync = Sync(device=DEV, client=AgentClient(server.url, server.add_device(260), session),
                    journal=journal, slots=[0], hello_payload=hello_payload,
                    sims_payload=no_sims, on_settings=lambda s: None, on_work=lambda: None,
                    sims_view=sims_view)  # fmt: skip
        await sync.hello()
        server.fail["pull"] = 1
        with pytest.raises(ServerAway):
            await sync.pull_once()
        assert await sync.pull_once() == 0  # told now
        assert await sync.pull_once() is None  # nothing new to tell, no room: no pull
    assert server.pulls[-1]["sims"] == [down.slots[0].wire()] and server.pulls[-1]["max"] == 1
    assert server.sim_reasons[(260, 0)] == "modem disconnected (port closed)"


POOLS_OUTBOX = """
CREATE TABLE outbox (
    device TEXT NOT NULL, id INTEGER NOT NULL, slot INTEGER NOT NULL, to_number TEXT NOT NULL,
    body TEXT NOT NULL, urgent INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL CHECK (state IN ('leased', 'committed', 'releasing', 'dispatching',
        'sent', 'failed', 'unknown', 'delivered', 'not_delivered')),
    lease_id TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL, updated REAL NOT NULL, last_error TEXT, pool TEXT,
    PRIMARY KEY (device, id));
CREATE INDEX outbox_due ON outbox (device, state, slot, urgent, next_attempt);
INSERT INTO outbox (device, id, slot, to_number, body, urgent, state, lease_id, created, updated,
    pool) VALUES ('hall', 5, 1, '+49151', 'leased from a pool', 1, 'leased', 'L0', 1.0, 1.0, 'otp');
"""


async def test_a_journal_whose_state_check_is_an_in_list_is_rebuilt_and_keeps_its_pools(
    tmp_path: Path,
) -> None:
    """The outbox as agents with pools wrote it: its CHECK, an IN list, made SQLite build a
    temporary b-tree for every state change. Opened by this agent, the table is rebuilt with
    every row, its pool included."""
    path = tmp_path / "pools.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(POOLS_OUTBOX)
    j = Journal(path)
    await j.open()
    try:
        m = await j.next_due(DEV, 1, 10.0, claimable=True)
        assert m is not None and (m.id, m.lease_id, m.claimed) == (5, "L0", False)
    finally:
        await j.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT pool FROM outbox WHERE id = 5").fetchall() == [("otp",)]
        program = conn.execute("EXPLAIN UPDATE outbox SET state = 'sent' WHERE id = 5").fetchall()
        assert [op for op in program if op[1] == "OpenEphemeral"] == []
        (tables,) = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                 " AND name LIKE 'outbox%'").fetchone()  # fmt: skip
        assert tables == 1  # the old table is gone
