"""Fault injection in-process: each fault's AT-level effect, and validation of fault specs."""

from __future__ import annotations

import asyncio
import re
import time
import types

import pytest

from simhive.agent.modem import pdu
from simhive.hardware.emulator import engine
from simhive.hardware.emulator.faults import FaultError, Faults, apply_faults, parse_cli_fault

from .harness import Port, Rig


async def _send(port: Port, number: str, text: str = "x") -> str:
    part = pdu.encode_submit(number, text, status_report=False)[0]
    return await port.send_pdu(part.tpdu_length, part.hex)


async def _ready(rig: Rig, *profiles: str) -> list[Port]:
    for p in profiles or ("generic",):
        rig.add(p)
    await rig.start()
    ports = [rig.port(m.id) for m in rig.modems]
    for port in ports:
        await port.cmd("ATE0;+CMEE=1")
    return ports


async def test_cms_error_for_next_n_sends(rig: Rig) -> None:
    (port,) = await _ready(rig)
    modem = rig.modems[0]
    modem.apply_faults({"cms_error": {"code": 41, "count": 2}})
    assert "+CMS ERROR: 41" in await _send(port, "+4930111")
    assert "+CMS ERROR: 41" in await _send(port, "+4930111")
    assert "+CMGS: 1" in await _send(port, "+4930111")  # failed submits use no reference
    assert len(rig.network.submitted) == 1


async def test_cms_error_by_number_pattern(rig: Rig) -> None:
    (port,) = await _ready(rig)
    rig.modems[0].apply_faults(
        {"cms_error": [{"code": 21, "number_pattern": "+4930*"}, {"code": 500, "count": 1}]}
    )
    assert "+CMS ERROR: 21" in await _send(port, "+4930111")
    assert "+CMS ERROR: 500" in await _send(port, "+4940111")
    assert "+CMGS:" in await _send(port, "+4940111")
    assert "+CMS ERROR: 21" in await _send(port, "+4930999")


async def test_no_network(rig: Rig) -> None:
    (port,) = await _ready(rig)
    await port.cmd("AT+CREG=1")
    rig.modems[0].apply_faults({"no_network": True})
    assert "+CREG: 0" in await port.urc(r"\+CREG: 0\r\n")
    assert "+CREG: 1,0" in await port.cmd("AT+CREG?")
    assert "+COPS: 0\r\n" in await port.cmd("AT+COPS?")
    assert "+CGATT: 0" in await port.cmd("AT+CGATT?")
    assert "+CMS ERROR: 331" in await _send(port, "+4930111")
    rig.modems[0].clear_faults()
    assert "+CREG: 1" in await port.urc(r"\+CREG: 1\r\n")
    assert "+CMGS:" in await _send(port, "+4930111")


async def test_incoming_held_while_no_network(rig: Rig) -> None:
    (port,) = await _ready(rig)
    await port.cmd("AT+CNMI=2,1,0,0,0")
    modem = rig.modems[0]
    modem.apply_faults({"no_network": True})
    rig.network.inject("+4917000000", modem.sims[0].sim.number, "wait for me")
    await port.cmd("AT")
    assert rig.network.pending_count() == 1
    modem.apply_faults({"no_network": False})
    assert '+CMTI: "SM",1' in await port.urc(r"\+CMTI: [^\r]*\r\n")


async def test_sim_missing(rig: Rig) -> None:
    (port,) = await _ready(rig)
    rig.modems[0].apply_faults({"sim_missing": True})
    assert "+CME ERROR: 10" in await port.cmd("AT+CPIN?")
    assert "+CME ERROR: 10" in await port.cmd("AT+CIMI")
    assert "+CMS ERROR: 310" in await port.cmd("AT+CMGL=4")
    assert "+CREG: 0,0" in await port.cmd("AT+CREG?")


async def test_sim_busy_window(rig: Rig) -> None:
    (port,) = await _ready(rig)
    rig.modems[0].apply_faults({"sim_busy": 0.4})
    assert "+CME ERROR: 14" in await port.cmd("AT+CPIN?")
    assert "+CMS ERROR: 314" in await port.cmd("AT+CPMS?")
    deadline = time.monotonic() + 10
    while "READY" not in (out := await port.cmd("AT+CPIN?")):
        assert "+CME ERROR: 14" in out
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_hang_one_command(rig: Rig) -> None:
    (port,) = await _ready(rig)
    rig.modems[0].apply_faults({"hang": {"command": "AT+CSQ", "count": 1}})
    port.session.feed(b"AT+CSQ\r")
    await asyncio.sleep(0.3)
    assert port.wire.take() == b""  # no answer at all
    assert await port.cmd("AT") == "\r\nOK\r\n"  # the drain barrier works again
    assert "+CSQ:" in await port.cmd("AT+CSQ")  # count used up


async def test_hang_everything_until_cleared(rig: Rig) -> None:
    (port,) = await _ready(rig)
    rig.modems[0].apply_faults({"hang": True})
    port.session.feed(b"AT\r")
    await asyncio.sleep(0.3)
    assert port.wire.take() == b""
    rig.modems[0].clear_faults()
    assert await port.cmd("AT") == "\r\nOK\r\n"


async def test_garbage_bytes(rig: Rig) -> None:
    (port,) = await _ready(rig)
    rig.modems[0].apply_faults({"garbage": 0.05})
    junk = await port.wire.expect(b"\r\n", 5.0)
    await asyncio.sleep(0.5)
    out = junk + port.wire.take()
    assert any(b in out for b in (0x00, 0xFF, 0xFE, 0x80))
    rig.modems[0].clear_faults()
    await asyncio.sleep(0.3)
    port.wire.take()
    assert await port.cmd("AT") == "\r\nOK\r\n"


async def test_idle_tickers_park_until_a_garbage_fault(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ports with nothing periodic to print do not wake five times a second; a garbage fault
    wakes them at once, clearing it parks them again, and noisy profiles keep ticking."""
    ticks: list[str] = []
    real_sleep = asyncio.sleep

    async def counting_sleep(delay: float, result: object = None) -> object:
        task = asyncio.current_task()
        ticks.append(task.get_name() if task else "")
        return await real_sleep(delay, result)

    proxy = types.ModuleType("asyncio")
    proxy.__dict__.update(vars(asyncio))
    proxy.sleep = counting_sleep  # type: ignore[attr-defined]
    monkeypatch.setattr(engine, "asyncio", proxy)
    quiet, _other, noisy = await _ready(rig, "generic", "generic", "huawei-e173")
    await asyncio.sleep(0.5)
    assert {t for t in ticks if t.startswith("tick-")} == {"tick-m3.0"}  # Huawei ^RSSI noise
    ticks.clear()
    rig.modems[0].apply_faults({"garbage": 0.05})
    await quiet.wire.expect(re.compile(rb"[\x00\xff\xfe\x80#~}]"), 2.0)  # junk within ticks
    assert {"tick-m1.0", "tick-m3.0"} <= set(ticks) and "tick-m2.0" not in ticks
    rig.modems[0].clear_faults()
    await asyncio.sleep(0.3)  # the tick under way ends; then m1 parks again
    ticks.clear()
    quiet.wire.take()
    await asyncio.sleep(0.5)
    assert {t for t in ticks if t.startswith("tick-")} == {"tick-m3.0"}
    assert quiet.wire.take() == b"" and noisy.session.settings.curc


async def test_latency_per_sms(rig: Rig) -> None:
    (port,) = await _ready(rig)
    rig.modems[0].apply_faults({"latency": 0.3})
    started = time.monotonic()
    assert "+CMGS:" in await _send(port, "+4930111")
    # the record is taken at the final answer, so it cannot be earlier than the latency
    assert rig.network.submitted[0].monotonic - started >= 0.3


async def test_full_storage_fault(rig: Rig) -> None:
    (port,) = await _ready(rig)
    modem = rig.modems[0]
    await port.cmd("AT+CNMI=2,1,0,0,0")
    modem.apply_faults({"full_storage": True})
    rig.network.inject("+4917000000", modem.sims[0].sim.number, "no room")
    assert "+CMS ERROR: 322" in await port.cmd("AT+CMGW")
    assert rig.network.pending_count() == 1
    modem.apply_faults({"full_storage": False})
    assert '+CMTI: "SM",1' in await port.urc(r"\+CMTI: [^\r]*\r\n")


def test_fault_validation() -> None:
    faults = Faults()
    bad = [
        {"nope": 1},
        {"latency": -1},
        {"latency": "slow"},
        {"cms_error": {"count": 2}},
        {"cms_error": {"code": 41, "count": 0}},
        {"cms_error": {"code": 41, "extra": 1}},
        {"no_network": "yes"},
        {"hang": 3},
        {"garbage": 0.001},
        [],
    ]
    for spec in bad:
        with pytest.raises(FaultError):
            apply_faults(faults, spec)
    # a bad field leaves every other field of the same request unapplied
    with pytest.raises(FaultError):
        apply_faults(faults, {"no_network": True, "latency": -5})
    assert faults.no_network is False
    assert apply_faults(faults, {"cms_error": 42, "sim_busy": True}) == ["cms_error", "sim_busy"]
    assert faults.cms_errors[0].code == 42 and faults.sim_busy == 3.0
    assert parse_cli_fault('cms_error={"code": 41}') == {"cms_error": {"code": 41}}
    assert parse_cli_fault("no_network") == {"no_network": True}
    assert parse_cli_fault("hang=AT+CSQ") == {"hang": "AT+CSQ"}


async def test_sim_pin(rig: Rig) -> None:
    (port,) = await _ready(rig, "sim800c")
    modem = rig.modems[0]
    modem.apply_faults({"pin": "0042"})
    assert "+CPIN: SIM PIN" in await port.cmd("AT+CPIN?")
    assert "+CME ERROR: 11" in await port.cmd("AT+CIMI")
    assert "+CMS ERROR: 311" in await port.cmd("AT+CPMS?")
    assert "+CREG: 0,0" in await port.cmd("AT+CREG?")
    assert "+CME ERROR: 16" in await port.cmd('AT+CPIN="1111"')
    assert (await port.cmd('AT+CPIN="0042"')).endswith("\r\nOK\r\n")
    assert "SMS Ready" in await port.urc(r"SMS Ready\r\n")
    assert "+CPIN: READY" in await port.cmd("AT+CPIN?")
    assert "+CME ERROR: 3" in await port.cmd('AT+CPIN="0042"')  # nothing to unlock
    # a reboot locks it again; three wrong PINs need the PUK
    await port.cmd("AT+CFUN=1,1")
    assert "+CPIN: SIM PIN" in await port.urc(r"\+CPIN: SIM PIN\r\n", 5)
    await port.cmd("ATE0;+CMEE=1")
    for _ in range(3):
        assert "+CME ERROR: 16" in await port.cmd('AT+CPIN="9999"')
    assert "+CPIN: SIM PUK" in await port.cmd("AT+CPIN?")
    assert "+CME ERROR: 12" in await port.cmd('AT+CPIN="0042"')
    assert modem.faults.describe()["pin"] == "****"
    with pytest.raises(FaultError):
        modem.apply_faults({"pin": 1234})
    assert parse_cli_fault("pin=0042") == {"pin": "0042"}


@pytest.mark.parametrize("how", ["fault", "cnmi-mode-3"])
async def test_urc_inside_cmgs_reply(rig: Rig, how: str) -> None:
    ports = await _ready(rig, "generic", "generic")
    sender, receiver = ports
    receiver_modem = rig.modems[1]
    if how == "fault":
        await receiver.cmd("AT+CNMI=2,1,0,0,0")
        receiver_modem.apply_faults({"urc_in_reply": True, "latency": 0.3})
    else:  # mode 3 forwards URCs in band by definition (27.005 3.4.1)
        await receiver.cmd("AT+CNMI=3,1,0,0,0")
        receiver_modem.apply_faults({"latency": 0.3})
    part = pdu.encode_submit(rig.modems[0].sims[0].sim.number, "x", status_report=False)[0]
    receiver.session.feed(f"AT+CMGS={part.tpdu_length}\r".encode())
    await receiver.wire.expect(b"> ")
    receiver.session.feed(part.hex.encode() + b"\x1a")
    # while the submit is in flight an SMS arrives: its +CMTI comes before the +CMGS answer
    rig.network.inject("+4917000000", receiver_modem.sims[0].sim.number, "meanwhile")
    out = (await receiver.wire.expect(b"OK\r\n")).decode()
    assert out.index('+CMTI: "SM",1') < out.index("+CMGS: 1")
    assert (await sender.cmd("AT")).endswith("OK\r\n")
