"""The AT Modem against the real emulator process over ptys: every profile, both dual-SIM
styles, and every fault the emulator offers (hardware/emulator, docs/emulator.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simhive.agent.modem.atmodem import open_at_modem
from simhive.agent.modem.base import (
    DeliveryReport,
    IncomingSms,
    ModemEvent,
    ModemState,
    SendError,
    SendOutcome,
    StateChange,
)
from simhive.agent.modem.dualport import DualPortModem
from simhive.agent.modem.probe import probe
from simhive.hardware.emulator.client import EmulatorProcess, run_emulator

pytestmark = pytest.mark.integration

PROFILES = ["generic", "huawei-e173", "sim800c", "sim800c-ds", "quectel-ec25", "wavecom", "zte"]
DUAL = ["none", "none", "none", "cdsds", "qdsim", "none", "none"]
OUTSIDE = "+4930123456"  # a number outside the emulated set: delivered by rule, never stored
UNICODE = "Grüße 😀 " * 12  # UCS2, two parts
LONG = "simhive multipart test " * 12  # GSM 7-bit, two parts


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    # One process for the profile matrix: one modem per profile, plus a two-port device.
    with run_emulator(
        modems=len(PROFILES) + 1,
        profile=",".join([*PROFILES, "generic"]),
        dual_sim=",".join([*DUAL, "ports"]),
    ) as e:
        yield e


@pytest.fixture
def faulty(request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    # Faults get their own process so they never leak into other tests. Parametrised tests
    # pass (profile, dual-SIM style) indirectly; the default is a generic single-SIM modem.
    profile, dual = getattr(request, "param", ("generic", "none"))
    with run_emulator(modems=2, profile=profile, dual_sim=dual) as e:
        yield e


EVERY_STYLE = [*zip(PROFILES, DUAL, strict=True), ("generic", "ports")]


class Events:
    def __init__(self) -> None:
        self.items: list[ModemEvent] = []

    async def __call__(self, ev: ModemEvent) -> None:
        self.items.append(ev)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.items if isinstance(e, kind)]


async def until(cond: Callable[[], object], seconds: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def modem_json(emu: EmulatorProcess, profile: str, dual: str = "") -> dict[str, Any]:
    for m in emu.state["modems"]:
        if m["profile"] == profile and (not dual or m["dual_sim"] == dual):
            return dict(m)
    raise LookupError(profile)


async def started(m: Any, **kw: Any) -> tuple[Any, Events]:
    dual = m["dual_sim"]
    port: Any = [s["link"] for s in m["sims"]] if dual == "ports" else m["link"]
    kw.setdefault("health_interval", 3600)
    modem = open_at_modem(port, dual_sim=dual, **kw)
    for part in modem.ports if isinstance(modem, DualPortModem) else [modem]:
        part.supervisor.reopen_min = 0.1
    events = Events()
    await modem.start(events)
    return modem, events


def submitted_to(emu: EmulatorProcess, number: str) -> list[dict[str, Any]]:
    return [s for s in emu.client.submitted() if s["to"] == number]


# -- the profile matrix ----------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "dual"), list(zip(PROFILES, DUAL, strict=True)))
async def test_probe(emu: EmulatorProcess, profile: str, dual: str):
    m = modem_json(emu, profile)
    found = await probe(m["link"])
    assert found.get("error") is None, found
    assert found["imei"] == m["imei"]
    assert found["profile"] == profile
    assert found["dual_sim"] == dual
    sim = found["sims"][0]  # type: ignore[index]
    expected = m["sims"][0]
    assert (sim["iccid"], sim["imsi"], sim["number"]) == (
        expected["iccid"],
        expected["imsi"],
        expected["number"],
    )
    assert sim["operator_code"] == expected["operator_code"]
    assert sim["country_iso"] == "de" and sim["registered"]
    assert isinstance(sim["signal_dbm"], int)


@pytest.mark.parametrize("profile", PROFILES)
async def test_send_and_receive(emu: EmulatorProcess, profile: str):
    m = modem_json(emu, profile)
    modem, events = await started(m)
    try:
        assert modem.state is ModemState.READY
        # Single, multipart GSM 7-bit and multipart unicode, each with report requests.
        results = [
            await modem.send(OUTSIDE, f"single from {profile}"),
            await modem.send(OUTSIDE, LONG + profile),
            await modem.send(OUTSIDE, UNICODE + profile),
        ]
        assert [len(r.references) for r in results] == [1, 2, 2]
        assert [r.encoding for r in results] == ["gsm7", "gsm7", "ucs2"]
        refs = [ref for r in results for ref in r.references]
        await until(lambda: len(events.of(DeliveryReport)) >= len(refs))
        reports = events.of(DeliveryReport)
        assert sorted(r.reference for r in reports) == sorted(refs)
        assert all(r.recipient == OUTSIDE and r.status == 0 for r in reports)
        mine = [s for s in submitted_to(emu, OUTSIDE) if s["modem"] == m["id"]]
        assert sorted(s["reference"] for s in mine) == sorted(refs)
        # Receive a long message from outside: reassembled once, then deleted from the modem.
        emu.client.send_sms("+4917099887766", m["sims"][0]["number"], "inbound " + LONG)
        await until(lambda: events.of(IncomingSms))
        (sms,) = events.of(IncomingSms)
        assert sms.text == "inbound " + LONG and sms.parts == 2 and not sms.incomplete
        assert sms.sender == "+4917099887766" and sms.slot == 0
        await until(lambda: not _stored(emu, m["id"]))
    finally:
        await modem.stop()


def _stored(emu: EmulatorProcess, modem_id: str, slot: int | None = None) -> list[Any]:
    found = []
    for s in emu.client.storage(modem_id)["slots"]:
        if slot is None or s["slot"] == slot:
            for mem in s["memories"].values():
                found += mem["messages"]
    return found


@pytest.mark.parametrize("dual", ["cdsds", "qdsim"])
async def test_single_standby_dual_sim(emu: EmulatorProcess, dual: str):
    m = modem_json(emu, "sim800c-ds" if dual == "cdsds" else "quectel-ec25", dual)
    modem, events = await started(m)
    try:
        assert modem.slots == [0, 1]
        sim2 = m["sims"][1]
        # An SMS to SIM 2 while SIM 1 is active waits in the network...
        emu.client.send_sms("+4917011112222", sim2["number"], "for SIM 2")
        await asyncio.sleep(0.3)
        assert not events.of(IncomingSms)
        # ...and arrives once SIM 2 is selected (here by sending from it).
        result = await modem.send(OUTSIDE, "from SIM 2", slot=1)
        (part,) = [
            s
            for s in submitted_to(emu, OUTSIDE)
            if s["text"] == "from SIM 2" and s["modem"] == m["id"]
        ]
        assert part["slot"] == 1 and part["reference"] == result.references[0]
        await until(lambda: events.of(IncomingSms))
        (sms,) = events.of(IncomingSms)
        assert (sms.slot, sms.text) == (1, "for SIM 2")
        await until(lambda: events.of(DeliveryReport))
        assert events.of(DeliveryReport)[0].slot == 1
        infos = await modem.sim_info()
        assert [i.active for i in infos] == [False, True]
        assert infos[1].iccid == sim2["iccid"] and infos[1].number == sim2["number"]
        assert infos[0].iccid == m["sims"][0]["iccid"]
        # Back to SIM 1.
        await modem.send(OUTSIDE, "from SIM 1", slot=0)
        assert [i.active for i in await modem.sim_info()] == [True, False]
    finally:
        await modem.stop()


async def test_two_ports_device(emu: EmulatorProcess):
    m = modem_json(emu, "generic", "ports")
    modem, events = await started(m)
    try:
        assert isinstance(modem, DualPortModem) and modem.state is ModemState.READY
        infos = await modem.sim_info()
        assert [i.iccid for i in infos] == [s["iccid"] for s in m["sims"]]
        await modem.send(OUTSIDE, "port two", slot=1)
        (part,) = [s for s in submitted_to(emu, OUTSIDE) if s["text"] == "port two"]
        assert part["slot"] == 1
        emu.client.send_sms("+4917011113333", m["sims"][1]["number"], "to port two")
        await until(lambda: events.of(IncomingSms))
        assert [(s.slot, s.text) for s in events.of(IncomingSms)] == [(1, "to port two")]
    finally:
        await modem.stop()


async def test_modem_to_modem(emu: EmulatorProcess):
    a, b = modem_json(emu, "zte"), modem_json(emu, "huawei-e173")
    ma, ea = await started(a)
    mb, eb = await started(b)
    try:
        await ma.send(b["sims"][0]["number"], UNICODE)
        await until(lambda: eb.of(IncomingSms))
        assert eb.of(IncomingSms)[0].text == UNICODE
        assert eb.of(IncomingSms)[0].sender == a["sims"][0]["number"]
        await until(lambda: len(ea.of(DeliveryReport)) == 2)
    finally:
        await ma.stop()
        await mb.stop()


# -- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize("faulty", EVERY_STYLE, indirect=True, ids=lambda p: "-".join(p))
async def test_permanent_rejection_fails_at_once_and_next_goes(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    faulty.client.set_faults(m["id"], {"cms_error": {"code": 1, "number_pattern": "+4930999*"}})
    modem, _ = await started(m)
    try:
        for slot in modem.slots:
            with pytest.raises(SendError) as err:
                await modem.send("+4930999000", "bad number", slot=slot)
            assert err.value.outcome is SendOutcome.PERMANENT and err.value.cms == 1
            result = await modem.send(OUTSIDE, f"the next one {slot}", slot=slot)
            assert result.references
        texts = [s["text"] for s in faulty.client.submitted()]
        assert texts == [f"the next one {slot}" for slot in modem.slots]
    finally:
        await modem.stop()


async def test_transient_error_and_no_network(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    modem, _ = await started(m, health_interval=0.3)
    try:
        faulty.client.set_faults(m["id"], {"cms_error": {"code": 41, "count": 1}})
        with pytest.raises(SendError) as err:
            await modem.send(OUTSIDE, "busy network")
        assert err.value.outcome is SendOutcome.RETRY and err.value.cms == 41
        assert (await modem.send(OUTSIDE, "retried")).references
        faulty.client.set_faults(m["id"], {"no_network": True})
        await until(lambda: modem.state is ModemState.DEGRADED)
        with pytest.raises(SendError) as err:
            await modem.send(OUTSIDE, "no service")
        assert err.value.outcome is SendOutcome.RETRY and err.value.status == 10
        faulty.client.clear_faults(m["id"])
        await until(lambda: modem.state is ModemState.READY)
    finally:
        await modem.stop()


async def test_sim_missing_then_inserted(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    faulty.client.set_faults(m["id"], {"sim_missing": True})
    modem, events = await started(m, health_interval=0.3)
    try:
        assert modem.state is ModemState.DEGRADED
        faulty.client.clear_faults(m["id"])
        await until(lambda: modem.state is ModemState.READY)
        (info,) = await modem.sim_info()
        assert info.iccid == m["sims"][0]["iccid"]
    finally:
        await modem.stop()


async def test_sim_busy_at_boot(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    faulty.client.set_faults(m["id"], {"sim_busy": 1.5})
    modem, _ = await started(m)
    try:
        assert modem.state is ModemState.READY
    finally:
        await modem.stop()


@pytest.mark.parametrize("faulty", EVERY_STYLE, indirect=True, ids=lambda p: "-".join(p))
async def test_hung_submit_then_next_send(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    modem, _ = await started(m, prompt_timeout=1.0, send_timeout=2.0)
    try:
        faulty.client.set_faults(m["id"], {"hang": {"command": "AT+CMGS", "count": 1}})
        with pytest.raises(SendError) as err:
            await modem.send(OUTSIDE, "into the void")
        # The hung AT+CMGS never showed a prompt: nothing left, so a retry is safe.
        assert err.value.outcome is SendOutcome.RETRY
        assert (await modem.send(OUTSIDE, "after the hang")).references
        assert [s["text"] for s in faulty.client.submitted()] == ["after the hang"]
    finally:
        await modem.stop()


async def test_hung_modem_recovers(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    modem, events = await started(m, health_interval=0.3, time_scale=0.4)
    try:
        faulty.client.set_faults(m["id"], {"hang": True})
        await until(lambda: modem.supervisor.failures >= 1 or modem.state is not ModemState.READY)
        faulty.client.clear_faults(m["id"])
        await until(lambda: modem.state is ModemState.READY and modem.supervisor.failures == 0)
        assert (await modem.send(OUTSIDE, "alive again")).references
    finally:
        await modem.stop()


@pytest.mark.parametrize("faulty", EVERY_STYLE, indirect=True, ids=lambda p: "-".join(p))
async def test_unplug_and_replug(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    modem, events = await started(m)
    try:
        faulty.client.unplug(m["id"])
        await until(lambda: modem.state is ModemState.DISCONNECTED)
        with pytest.raises(SendError) as err:
            await modem.send(OUTSIDE, "while unplugged")
        assert err.value.outcome is SendOutcome.RETRY
        faulty.client.send_sms("+4917055556666", m["sims"][0]["number"], "sent while away")
        faulty.client.replug(m["id"])
        await until(lambda: modem.state is ModemState.READY)
        await until(lambda: events.of(IncomingSms))
        assert events.of(IncomingSms)[0].text == "sent while away"
        states = [e.state for e in events.of(StateChange)]
        assert ModemState.DISCONNECTED in states and states[-1] is ModemState.READY
        assert (await modem.send(OUTSIDE, "back")).references
    finally:
        await modem.stop()


async def test_garbage_on_the_line(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    modem, events = await started(m)
    try:
        faulty.client.set_faults(m["id"], {"garbage": 0.05})
        # The noise is seen and skipped, never mistaken for replies.
        await until(lambda: modem.channel.junk_lines + modem.unknown_lines >= 3)
        for i in range(3):
            assert (await modem.send(OUTSIDE, f"through the noise {i}")).references
        faulty.client.send_sms("+4917077778888", m["sims"][0]["number"], "noisy inbox")
        await until(lambda: events.of(IncomingSms))
        assert events.of(IncomingSms)[0].text == "noisy inbox"
    finally:
        faulty.client.clear_faults(m["id"])
        await modem.stop()


async def test_full_storage_then_freed(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    faulty.client.set_faults(m["id"], {"full_storage": True})
    modem, events = await started(m)
    try:
        faulty.client.send_sms("+4917044443333", m["sims"][0]["number"], "held by the network")
        await asyncio.sleep(0.5)
        assert not events.of(IncomingSms)
        faulty.client.clear_faults(m["id"])
        await until(lambda: events.of(IncomingSms))
        assert events.of(IncomingSms)[0].text == "held by the network"
    finally:
        await modem.stop()


async def test_slow_radio_latency(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    faulty.client.set_faults(m["id"], {"latency": 1.0})
    modem, _ = await started(m, prompt_timeout=5.0, send_timeout=60.0)
    try:
        # A submit that takes a while is waited for (the +CMGS budget is >= 60 s), not retried.
        result = await modem.send(OUTSIDE, "slow network")
        assert result.references
        assert len(faulty.client.submitted()) == 1
    finally:
        await modem.stop()


async def test_probe_of_a_missing_port(tmp_path):
    from simhive.agent.modem.transport import TransportClosed

    with pytest.raises(TransportClosed):
        await probe(str(tmp_path / "no-such-tty"))


async def test_roaming_reported_by_urc(faulty: EmulatorProcess):
    m = faulty.state["modems"][0]
    modem, _ = await started(m)
    try:
        faulty.client.set_sim(m["id"], 0, roaming=True)
        await until(lambda: "roaming" in modem.state_reason)
        (info,) = await modem.sim_info()
        assert info.roaming and info.registered
    finally:
        await modem.stop()


async def test_submit_without_answer_is_unknown_and_the_late_answer_is_harmless(
    faulty: EmulatorProcess,
):
    m = faulty.state["modems"][0]
    faulty.client.set_faults(m["id"], {"latency": 2.5})
    modem, _ = await started(m, send_timeout=1.0)
    try:
        with pytest.raises(SendError) as err:
            await modem.send(OUTSIDE, "maybe sent")
        # The PDU was handed over and the network may have it: never resend silently.
        assert err.value.outcome is SendOutcome.UNKNOWN
        faulty.client.clear_faults(m["id"])
        # The late +CMGS/OK of the first submit must not be read as the next one's answer.
        result = await modem.send(OUTSIDE, "definitely sent")
        sub = [s for s in faulty.client.submitted() if s["text"] == "definitely sent"]
        assert [s["reference"] for s in sub] == result.references
        assert [s["text"] for s in faulty.client.submitted()] == ["maybe sent", "definitely sent"]
    finally:
        await modem.stop()


async def test_a_direct_report_the_agent_died_holding_is_delivered_again_after_the_restart(
    faulty: EmulatorProcess,
):
    """The window of the intermittent kill -9 e2e failure: a +CDS read off the port whose
    handler (the journal write) had not returned when the agent died. The agent acknowledges a
    report (AT+CNMA, CSMS service 1) only after its handler returned, so the network still has
    this one and delivers it again; the restarted agent gets it. Under CSMS service 0 the modem
    had acknowledged it as it printed it, and it was gone."""
    m = faulty.state["modems"][0]
    faulty.client.configure_network(ack_timeout=1.0)
    seen = asyncio.Event()

    async def killed_before_the_write(ev: ModemEvent) -> None:
        if isinstance(ev, DeliveryReport):
            seen.set()
            await asyncio.Event().wait()  # the journal write that never completes

    first = open_at_modem(m["link"], health_interval=3600)
    await first.start(killed_before_the_write)
    try:
        assert first.capabilities.report_mode == "direct"  # type: ignore[union-attr]
        result = await first.send(OUTSIDE, "report lost with the agent?")
        await asyncio.wait_for(seen.wait(), 20)
    finally:
        await first.stop()  # cancels the handler mid-write, with nothing acknowledged
    second, events = await started(m)
    try:
        await until(lambda: events.of(DeliveryReport))
        reports = events.of(DeliveryReport)
        assert {(r.reference, r.recipient, r.status) for r in reports} == {
            (result.references[0], OUTSIDE, 0)
        }
    finally:
        await second.stop()
