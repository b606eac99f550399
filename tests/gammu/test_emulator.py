"""The Gammu backend against the real emulator process, through Gammu's own AT driver.

One emulator and one started GammuModem serve the module (Gammu's Init costs about 5 s); each
test looks only at the events recorded after it began. The unplug test runs last.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from simhive.agent.modem.base import (
    DeliveryReport,
    IncomingSms,
    ModemState,
    SendError,
    SendOutcome,
    StateChange,
)
from simhive.agent.modem.gammu_backend import GammuModem, open_gammu_modem
from simhive.hardware.emulator.client import EmulatorProcess, run_emulator
from tests.gammu.conftest import Recorder

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

OUTSIDE = "+4930123456"  # outside the emulated set: the network reports "delivered"
UNICODE = "Grüße aus dem Emulator ✓ " * 6  # UCS2, 3 parts
RETRY_TEXT = "try again later: 5€ {ok} [x]"  # GSM 7-bit with extension characters


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with run_emulator(modems=2, extra_args=["--report-delay", "0.2"]) as emu:
        yield emu


@dataclass
class Session:
    modem: GammuModem
    events: Recorder
    emu: EmulatorProcess

    @property
    def number(self) -> str:
        return str(self.emu.state["modems"][0]["sims"][0]["number"])

    def stored(self) -> list[dict[str, Any]]:
        slot = self.emu.client.storage("m1")["slots"][0]
        return [m for mem in slot["memories"].values() for m in mem["messages"]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(emu: EmulatorProcess) -> AsyncIterator[Session]:
    modem = open_gammu_modem(
        port=emu.state["modems"][0]["link"],
        connection="at115200",
        health_interval=1.0,
        sweep_interval=2.0,
        reconnect_min=0.5,
        reconnect_max=2.0,
    )
    events = Recorder()
    await modem.start(events)
    try:
        yield Session(modem, events, emu)
    finally:
        await modem.stop()


async def test_identify_and_sim_info(session: Session) -> None:
    modem, desc = session.modem, session.emu.state["modems"][0]
    assert modem.state is ModemState.READY, modem.state_reason
    assert modem.identity.manufacturer == "simhive"
    assert modem.identity.model == "Virtual GSM Modem"
    assert modem.identity.imei == desc["imei"]
    assert modem.identity.firmware
    assert modem.push_incoming  # SetIncomingSMS worked: the gammurc was read, not SetConfig
    [sim] = await modem.sim_info()
    assert sim.imsi == desc["sims"][0]["imsi"]
    assert sim.operator_code == desc["sims"][0]["operator_code"]
    assert sim.operator == desc["sims"][0]["operator"]
    assert sim.country_iso == "de"
    assert sim.registered and not sim.roaming
    assert sim.signal_dbm is not None and -113 <= sim.signal_dbm <= -51
    assert sim.iccid is None  # Gammu holds the port and has no ICCID call: unknown


async def test_send_single_with_a_delivery_report(session: Session) -> None:
    mark = len(session.events.events)
    since = _last_id(session)
    result = await session.modem.send(OUTSIDE, "hello from gammu")
    assert result.encoding == "gsm7" and len(result.references) == 1
    [part] = await asyncio.to_thread(session.emu.client.wait_submitted, 1, since=since)
    assert part["to"] == OUTSIDE and part["status_report"] and part["text"] == "hello from gammu"
    assert part["reference"] == result.references[0]
    raw = bytes.fromhex(part["pdu"])
    assert raw[raw[0] + 1] & 0x20  # TP-SRR in the first octet after Gammu's SCA field
    [report] = await session.events.wait(
        lambda: [r for r in session.events.since(mark, DeliveryReport) if r.recipient == OUTSIDE]
    )
    assert report.reference == result.references[0] and report.status == 0
    assert report.sc_timestamp is not None and report.discharge_time is not None


async def test_send_multipart_unicode_with_reports(session: Session) -> None:
    mark = len(session.events.events)
    since = _last_id(session)
    result = await session.modem.send(OUTSIDE, UNICODE)
    assert result.encoding == "ucs2" and len(result.references) == 3
    parts = await asyncio.to_thread(session.emu.client.wait_submitted, 3, since=since)
    assert [p["coding"] for p in parts] == ["ucs2"] * 3
    assert [p["part"] for p in parts] == [1, 2, 3] and {p["parts"] for p in parts} == {3}
    assert len({p["concat_reference"] for p in parts}) == 1
    assert "".join(p["text"] for p in parts) == UNICODE
    assert [p["reference"] for p in parts] == result.references
    reports = await session.events.wait(
        lambda: (r := session.events.since(mark, DeliveryReport))[2:] and r
    )
    assert sorted(r.reference for r in reports) == sorted(result.references)
    assert {r.status for r in reports} == {0}


async def test_incoming_is_deleted_only_after_the_handler_returned(session: Session) -> None:
    events, mark = session.events, len(session.events.events)
    seen_stored: list[int] = []
    inner = events.fail

    def check_still_stored(event: object) -> bool:
        if isinstance(event, IncomingSms):
            # Inside the handler: the parts must still be on the SIM.
            seen_stored.append(len([m for m in session.stored() if m["kind"] == "deliver"]))
        return False

    events.fail = check_still_stored
    text = "incoming through the callback " * 8  # 2 parts
    try:
        session.emu.client.send_sms("+4917012345678", session.number, text)
        [sms] = await events.wait(lambda: events.since(mark, IncomingSms))
    finally:
        events.fail = inner
    assert sms.text == text and sms.parts == 2 and sms.sender == "+4917012345678"
    assert not sms.incomplete and sms.key
    assert seen_stored == [2]
    await events.wait(lambda: not session.stored() or None, within=10)


async def test_a_refusing_handler_keeps_the_sms_and_the_next_sweep_brings_it(
    session: Session,
) -> None:
    events, mark = session.events, len(session.events.events)
    events.fail = lambda e: isinstance(e, IncomingSms)
    try:
        session.emu.client.send_sms("+4917012345678", session.number, RETRY_TEXT)
        await events.wait(lambda: events.refused or None)
        assert [m["text"] for m in session.stored()] == [RETRY_TEXT]
    finally:
        events.fail = lambda _e: False
    [sms] = await events.wait(lambda: events.since(mark, IncomingSms))  # the periodic sweep
    refused = events.refused[-1]
    assert isinstance(refused, IncomingSms)
    assert sms.key == refused.key and sms.text == RETRY_TEXT  # GSM 7-bit extension chars intact
    await events.wait(lambda: not session.stored() or None, within=10)
    events.refused.clear()


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (41, SendOutcome.RETRY),
        (331, SendOutcome.RETRY),
        (1, SendOutcome.PERMANENT),
        (304, SendOutcome.PERMANENT),
    ],  # fmt: skip
)
async def test_cms_errors_keep_their_code_and_meaning(
    session: Session, code: int, outcome: SendOutcome
) -> None:
    # Gammu raises ERR_UNKNOWN for most of these; the code comes from Gammu's own log.
    session.emu.client.set_faults("m1", {"cms_error": {"code": code, "count": 1}})
    with pytest.raises(SendError) as failed:
        await session.modem.send(OUTSIDE, "refused")
    assert failed.value.cms == code and failed.value.outcome is outcome
    assert failed.value.parts_sent == 0
    ok = await session.modem.send(OUTSIDE, "and the next one goes")
    assert len(ok.references) == 1


async def test_recovers_after_unplug_and_replug_and_a_missing_sim(session: Session) -> None:
    events, modem = session.events, session.modem
    mark = len(events.events)
    session.emu.client.unplug("m1")
    lost = await events.wait(
        lambda: [e for e in events.since(mark, StateChange) if e.state is ModemState.DISCONNECTED],
        within=30,
    )
    assert "link lost" in lost[0].reason
    with pytest.raises(SendError) as failed:
        await modem.send(OUTSIDE, "while unplugged")
    assert failed.value.outcome is SendOutcome.RETRY
    # It comes back without its SIM first: reported, not invented, and retried.
    session.emu.client.set_faults("m1", {"sim_missing": True})
    session.emu.client.replug("m1")
    await events.wait(
        lambda: [e for e in events.since(mark, StateChange) if e.reason == "SIM not inserted"],
        within=120,
    )
    [sim] = await modem.sim_info()
    assert not sim.present and sim.imsi is None
    session.emu.client.clear_faults("m1")
    await events.wait(
        # A Gammu call caught mid-answer by the unplug waits out Gammu's timeouts (~40 s).
        lambda: [e for e in events.since(mark, StateChange) if e.state is ModemState.READY],
        within=120,
    )
    result = await modem.send(OUTSIDE, "after replug")
    assert len(result.references) == 1
    # Incoming works again too (the callback was re-registered after Init).
    mark = len(events.events)
    session.emu.client.send_sms("+4917012345678", session.number, "welcome back")
    [sms] = await events.wait(lambda: events.since(mark, IncomingSms), within=30)
    assert sms.text == "welcome back"


def _last_id(session: Session) -> int:
    done = session.emu.client.submitted()
    return int(done[-1]["id"]) if done else 0
