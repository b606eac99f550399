"""The whole agent in one process: runner + sync + dispatcher + journal, a fake Modem at the
radio edge and the in-test protocol server. Life of a message end to end, incoming SMS,
graceful stop, and a restart after a crash mid-submit."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from simhive.agent.config import AgentConfig, DeviceConfig
from simhive.agent.http import HttpClient
from simhive.agent.journal import Journal, LeasedMessage
from simhive.agent.modem.base import (
    EventHandler,
    IncomingSms,
    ModemEvent,
    ModemState,
    SimInfo,
    StateChange,
)
from simhive.agent.runner import AgentRunner, DeviceRunner
from tests.agent.fakes import FakeModem, wait_for
from tests.agent.fakeserver import FakeAgentServer


def agent_cfg(server: FakeAgentServer, tmp: Path, token: str, **dev: object) -> AgentConfig:
    dev.setdefault("ports", ("/dev/fake0",))
    device = DeviceConfig(name="hall", token=token, server=server.url, **dev)  # type: ignore[arg-type]
    return AgentConfig(
        server=server.url,
        journal=tmp / "journal.sqlite3",
        devices=(device,),
        incoming_forward_timeout=30.0,
        retry_backoff_seconds=0.0,
    )


@asynccontextmanager
async def device_runner(
    server: FakeAgentServer, journal: Journal, tmp: Path, modem: FakeModem, **dev: object
) -> AsyncIterator[DeviceRunner]:
    cfg = agent_cfg(server, tmp, server.add_device(260), **dev)
    async with HttpClient() as session:
        runner = DeviceRunner(cfg.devices[0], cfg, journal, modem, session)
        await runner.start()
        try:
            yield runner
        finally:
            await runner.stop()


async def test_message_lives_1_2_3_6_7(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    modem = FakeModem(part_len=20)
    async with device_runner(server, journal, tmp_path, modem) as runner:
        await wait_for(lambda: bool(server.hellos), what="hello")
        sms = await server.add(260, "+491601112233", "a message of more than twenty chars")
        await wait_for(lambda: server.messages[sms].status == 6, what="sent")
        parts = server.messages[sms].parts
        assert [p["index"] for p in parts] == [0, 1]
        for p in parts:
            await modem.report(0, p["reference"], "+491601112233", status=0)
        await wait_for(lambda: server.messages[sms].status == 7, what="delivered")
        assert runner.sync.device_id == 260
    assert server.messages[sms].history == [1, 2, 3, 6, 7]
    assert modem.submits[0].number == "+491601112233"
    assert server.hellos[0]["device"]["imei"] == "490154203237518"
    assert server.hellos[0]["device"]["title"] == "hall"


async def test_incoming_is_deleted_only_after_the_server_has_it(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    modem = FakeModem()
    now = datetime.now(UTC)
    sms = IncomingSms(
        slot=0,
        sender="+4917012345",
        text="Hallo",
        sent_at=now,
        received_at=now,
        key="26201:+4917012345:1",
    )
    async with device_runner(server, journal, tmp_path, modem):
        await wait_for(lambda: modem.handler is not None and bool(server.hellos))
        await wait_for(lambda: server.statuses != [], what="first status with SIM info")
        seen_at_return: list[bool] = []
        orig = modem.handler
        assert orig is not None

        async def spy(ev: ModemEvent) -> None:
            await orig(ev)
            seen_at_return.append(sms.key in server.incoming)

        modem.handler = spy
        await modem.emit(sms)
        assert seen_at_return == [True]
        await modem.emit(sms)  # the modem read it again (e.g. a sweep): no second SMS
    assert len(server.incoming) == 1


async def test_incoming_while_server_is_away_is_journaled_and_forwarded_later(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    modem = FakeModem()
    now = datetime.now(UTC)
    sms = IncomingSms(
        slot=0, sender="+4917012345", text="later", sent_at=now, received_at=now, key="k-later"
    )
    async with device_runner(server, journal, tmp_path, modem):
        await wait_for(lambda: modem.handler is not None and bool(server.hellos))
        server.down = True
        await asyncio.wait_for(modem.emit(sms), 10)  # returns: the journal holds it
        assert modem.deleted == ["k-later"] and "k-later" not in server.incoming
        server.down = False
        await wait_for(lambda: "k-later" in server.incoming, what="forwarded after outage")


async def test_modem_state_changes_reach_the_server(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    modem = FakeModem()
    async with device_runner(server, journal, tmp_path, modem):
        await wait_for(lambda: modem.handler is not None)
        modem.set_state(ModemState.DISCONNECTED)
        await modem.emit(StateChange(ModemState.DISCONNECTED, "port closed"))

        def got() -> bool:
            return any(
                e.get("state") == "disconnected"
                for s in server.statuses
                for e in s.get("events", [])
            )

        await wait_for(got, what="a disconnected status event")


async def test_graceful_stop_finishes_the_send_in_flight(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    modem = FakeModem()
    modem.gate = asyncio.Event()
    a = await server.add(260, "+4915100000001")
    b = await server.add(260, "+4915100000002")
    async with device_runner(server, journal, tmp_path, modem) as runner:
        await asyncio.wait_for(modem.in_send.wait(), 15)
        stopping = asyncio.create_task(runner.stop())
        await asyncio.sleep(0.1)
        assert not stopping.done()
        modem.gate.set()
        await asyncio.wait_for(stopping, 30)
        assert modem.stopped
    assert len(modem.submits) == 1
    assert server.messages[a].status == 6  # its report went out in the final flush
    assert server.messages[b].status == 3 and await journal.message_state("hall", b) == "committed"


async def test_restart_after_crash_mid_submit_reports_unknown_and_sends_the_rest(
    server: FakeAgentServer, tmp_path: Path
) -> None:
    token = server.add_device(260)
    cfg = agent_cfg(server, tmp_path, token)
    a = await server.add(260, "+4915100000001")
    b = await server.add(260, "+4915100000002")
    # First life: pulled and committed both, was inside AT+CMGS for `a` when killed.
    j = Journal(cfg.journal)
    await j.open()
    async with HttpClient() as session:
        from simhive.agent.client import AgentClient

        client = AgentClient(server.url, token, session)
        answer = await client.pull(15, 0)
        msgs = [
            LeasedMessage(m["id"], m["to"], m["body"], m["sim"], m["urgent"])
            for m in answer["messages"]
        ]
        await j.add_leased("hall", answer["lease_id"], msgs, 1.0)
        await j.apply_commit(
            "hall",
            answer["lease_id"],
            (await client.commit(answer["lease_id"], [a, b]))["committed"],
            [],
        )
    assert await j.begin_dispatch("hall", a, 2.0)
    await j.close()

    modem = FakeModem()
    runner = AgentRunner(cfg, lambda _dev: modem)
    task = asyncio.create_task(runner.run())
    await wait_for(
        lambda: server.messages[b].status == 6 and server.messages[a].status == 9,
        what="b sent and a reported unknown",
    )
    runner.request_stop()
    await asyncio.wait_for(task, 30)
    assert modem.sent_numbers == ["+4915100000002"]  # a is never resent
    assert "not resent" in server.messages[a].reason


async def test_single_standby_device_gets_one_dispatcher_for_both_slots(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    modem = FakeModem(slots=[0, 1])
    async with device_runner(server, journal, tmp_path, modem, dual_sim="cdsds") as runner:
        assert len(runner.dispatchers) == 1 and list(runner.dispatchers[0].slots) == [0, 1]
        ids = [await server.add(260, f"+49151000000{i}", sim=i % 2) for i in range(6)]
        await wait_for(lambda: all(server.messages[i].status == 6 for i in ids), what="all sent")
    slots = [s.slot for s in modem.submits]
    assert sum(1 for x, y in zip(slots, slots[1:], strict=False) if x != y) == 1


class SlowStartModem(FakeModem):
    """A modem whose port is missing at first: start() fails until `present` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.present = asyncio.Event()
        self.real_identity = self.identity
        self.identity = type(self.identity)()  # unknown until the modem answers

    async def start(self, on_event: EventHandler) -> None:
        if not self.present.is_set():
            raise OSError("no such port")
        self.identity = self.real_identity
        await super().start(on_event)


async def test_modem_that_appears_later_is_started_and_announced(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    modem = SlowStartModem()
    async with device_runner(server, journal, tmp_path, modem):
        await wait_for(lambda: bool(server.hellos), what="first hello")
        assert server.hellos[0]["device"]["imei"] == ""
        await wait_for(
            lambda: any(
                e.get("reason") == "no such port"
                for s in server.statuses
                for e in s.get("events", [])
            ),
            what="modem down event",
        )
        modem.present.set()
        await wait_for(
            lambda: any(h["device"]["imei"] == "490154203237518" for h in server.hellos),
            limit=30,
            what="hello with identity",
        )
        a = await server.add(260, "+4915100000001")
        await wait_for(lambda: server.messages[a].status == 6, what="sent after the modem came")


async def test_one_agent_runs_several_devices(server: FakeAgentServer, tmp_path: Path) -> None:
    tokens = [server.add_device(1), server.add_device(2)]
    devices = tuple(
        DeviceConfig(name=f"d{i}", token=t, server=server.url, ports=(f"/dev/fake{i}",))
        for i, t in enumerate(tokens)
    )
    cfg = AgentConfig(server=server.url, journal=tmp_path / "j.sqlite3", devices=devices)
    modems = {d.name: FakeModem() for d in devices}
    runner = AgentRunner(cfg, lambda d: modems[d.name])
    task = asyncio.create_task(runner.run())
    ids = [await server.add(dev, f"+4915100000{dev}{i}") for dev in (1, 2) for i in range(3)]
    await wait_for(lambda: all(server.messages[i].status == 6 for i in ids), what="all sent")
    runner.request_stop()
    await asyncio.wait_for(task, 30)
    # Each device sent exactly its own messages, each once.
    assert sorted(modems["d0"].sent_numbers) == [f"+49151000001{i}" for i in range(3)]
    assert sorted(modems["d1"].sent_numbers) == [f"+49151000002{i}" for i in range(3)]


async def test_a_loop_that_dies_is_restarted_and_nothing_is_resent(
    server: FakeAgentServer, journal: Journal, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    modem = FakeModem()
    real_finish, real_due = journal.finish_sent_nowait, journal.next_due
    finishes = dues = 0

    def finish_fails_once(*args: Any, **kw: Any) -> asyncio.Future[None]:
        nonlocal finishes
        finishes += 1
        if finishes == 1:  # the write of the first "sent" fails (disk trouble)
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(OSError("disk I/O error"))
            return failed
        return real_finish(*args, **kw)

    async def due_fails_once(*args: Any, **kw: Any) -> Any:
        nonlocal dues
        dues += 1
        if dues == 3:  # later a read fails: the dispatcher loop dies and is restarted
            raise OSError("disk I/O error")
        return await real_due(*args, **kw)

    journal.finish_sent_nowait = finish_fails_once  # type: ignore[method-assign]
    journal.next_due = due_fails_once  # type: ignore[method-assign]
    async with device_runner(server, journal, tmp_path, modem) as runner:
        runner.restart_delay = 0.05
        a = await server.add(260, "+4915100000001")
        await wait_for(lambda: len(modem.submits) == 1, what="first submit")
        b = await server.add(260, "+4915100000002")
        await wait_for(lambda: server.messages[b].status == 6, what="the next one still goes")
        # `a` went out but could not be journaled: left dispatching, never resent.
        assert await journal.message_state("hall", a) == "dispatching"
    assert "dispatch0 loop failed; restarting it" in caplog.text
    assert "could not record it (disk I/O error)" in caplog.text
    assert modem.sent_numbers == ["+4915100000001", "+4915100000002"]


async def test_a_sent_message_whose_report_never_comes_ends_outcome_unknown(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    modem = FakeModem()
    cfg = agent_cfg(server, tmp_path, server.add_device(260))
    cfg = dataclasses.replace(cfg, delivery_report_timeout_seconds=1.0)
    async with HttpClient() as session:
        runner = DeviceRunner(cfg.devices[0], cfg, journal, modem, session)
        await runner.start()
        try:
            lost = await server.add(260, "+491601112233", "its report is lost")
            await wait_for(lambda: server.messages[lost].status == 6, what="sent")
            await wait_for(lambda: server.messages[lost].status == 9, what="outcome unknown")
            reason = server.messages[lost].reason
            assert reason.startswith("sent, but no final delivery report within 1 s")
        finally:
            await runner.stop()
    assert server.messages[lost].history == [1, 2, 3, 6, 9]


async def test_a_report_that_beats_its_send_record_is_held_then_matched(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    """The SC's report arrives while the send is still in the dispatcher's hands (the +CDS
    URC raced the journal write): held on disk, matched once the send is journaled."""
    modem = FakeModem()
    modem.gate = asyncio.Event()
    async with device_runner(server, journal, tmp_path, modem) as runner:
        sms = await server.add(260, "+491601112233", "fast network")
        await wait_for(modem.in_send.is_set, what="submit started")
        await modem.report(0, modem.next_mr, "+491601112233", status=0)
        assert [h.reference for h in await journal.held_reports("hall")] == [0]
        modem.gate.set()
        await wait_for(lambda: server.messages[sms].status == 7, what="delivered")
        assert await journal.held_reports("hall") == []
        assert not runner.matcher.holding


class OneRadioModem(FakeModem):
    """Single standby like the AT backend: it knows a SIM's info only once that SIM has been
    active; `visit_gate` holds activate_slot back so the test sees the status before the visit."""

    def __init__(self) -> None:
        super().__init__(slots=[0, 1])
        self.active_slot = 0
        self.seen = {0}
        self.visit_gate = asyncio.Event()

    async def activate_slot(self, slot: int) -> None:
        await self.visit_gate.wait()
        self.active_slot = slot
        self.seen.add(slot)

    async def sim_info(self) -> list[SimInfo]:
        known = await super().sim_info()
        return [s if s.slot in self.seen else SimInfo(slot=s.slot, active=False) for s in known]


async def test_the_other_sims_info_reaches_the_server_right_after_the_connect_visit(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    # Default intervals (visits 60 s, status 300 s): the visit at connect and the status that
    # follows every switch put both ICCIDs on the server within moments, not minutes.
    modem = OneRadioModem()

    def iccids() -> list[Any]:
        return [s["iccid"] for s in server.statuses[-1]["sims"]] if server.statuses else []

    async with device_runner(server, journal, tmp_path, modem, dual_sim="cdsds") as runner:
        runner.dispatchers[0].survey_dwell_seconds = 0.1  # the stay on SIM 2 (10 s by default)
        await wait_for(lambda: bool(iccids()), what="the first status")
        assert iccids()[1] is None  # SIM 2 not yet seen
        modem.visit_gate.set()
        await wait_for(lambda: all(iccids()), limit=5, what="a status with both ICCIDs")
        await wait_for(lambda: modem.active_slot == 0, limit=5, what="SIM 1 active again")


async def test_the_request_timeout_setting_reaches_the_server_client(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    cfg = agent_cfg(server, tmp_path, server.add_device(261))
    cfg = dataclasses.replace(cfg, request_timeout_seconds=8.0)
    async with HttpClient() as session:
        runner = DeviceRunner(cfg.devices[0], cfg, journal, FakeModem(), session)
        assert runner.client.timeout == 8.0


def test_tune_gc_raises_only_the_first_threshold() -> None:
    from simhive.agent.runner import GC_GEN0_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
    finally:
        gc.set_threshold(*before)
