"""pyserial against the real emulator over ptys: profile quirks, faults, dual SIM end to end.

One emulator process serves the module, one modem per profile plus dual-SIM and two-port modems:
  m1 generic (the fault target)  m2 huawei-e173  m3 sim800c  m4 sim800c-ds (cdsds)
  m5 quectel-ec25 (qdsim)        m6 wavecom      m7 zte      m8 generic (two ports)
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator

import pytest
import serial

from simhive.agent.modem import pdu
from simhive.hardware.emulator.client import EmulatorProcess, run_emulator, wait_for

from .serialport import AtPort

pytestmark = pytest.mark.integration

PROFILES = "generic,huawei-e173,sim800c,sim800c-ds,quectel-ec25,wavecom,zte,generic"
DUAL = "none,none,none,cdsds,qdsim,none,none,ports"
PDU_URC = r"\r\n([0-9A-F]+)\r\n"


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with run_emulator(
        modems=8,
        profile=PROFILES,
        dual_sim=DUAL,
        state_dir=tmp_path_factory.mktemp("pty-emu"),
        extra_args=["--report-delay", "0.05"],
    ) as process:
        yield process


@pytest.fixture
def m1(emu: EmulatorProcess) -> Iterator[AtPort]:
    with AtPort(emu.state["modems"][0]["link"]) as port:
        port.cmd("ATE0;+CMEE=1;+CNMI=2,1,0,1,0")
        yield port
    emu.client.clear_faults("m1")


def link(emu: EmulatorProcess, n: int, slot: int | None = None) -> str:
    modem = emu.state["modems"][n - 1]
    path = modem["link"] if slot is None else modem["sims"][slot]["link"]
    assert path is not None, "this SIM has no port of its own"
    return path


def number(emu: EmulatorProcess, n: int, slot: int = 0) -> str:
    return emu.state["modems"][n - 1]["sims"][slot]["number"]


def submit(port: AtPort, to: str, text: str, report: bool = True) -> int:
    part = pdu.encode_submit(to, text, status_report=report)[0]
    out = port.send_pdu(part.tpdu_length, part.hex)
    m = re.search(r"\+CMGS: (\d+)", out)
    assert m, out
    return int(m.group(1))


def read_stored(port: AtPort, urc: str) -> pdu.Deliver:
    index = int(
        port.expect(re.compile(rf'{re.escape(urc)}: "SM",(\d+)\r\n'.encode())).split(",")[-1]
    )
    out = port.cmd(f"AT+CMGR={index}")
    deliver = pdu.decode_incoming(bytes.fromhex(out.split("\r\n")[3]))
    assert isinstance(deliver, pdu.Deliver)
    port.cmd(f"AT+CMGD={index}")
    return deliver


def wait_registered(port: AtPort) -> None:
    deadline = time.monotonic() + 15
    while not re.search(r": \d,[15]\r\n", port.cmd("AT+CREG?")):
        assert time.monotonic() < deadline, "did not re-register"
        time.sleep(0.05)


# ---- profile quirks ---------------------------------------------------------------------------


def test_generic_identity(emu: EmulatorProcess) -> None:
    with AtPort(link(emu, 1)) as port:
        port.cmd("ATE0")
        assert f"\r\n{emu.state['modems'][0]['imei']}\r\n" in port.cmd("AT+CGSN")
        assert f"\r\n{emu.state['modems'][0]['sims'][0]['iccid']}\r\n" in port.cmd("AT+CCID")


def test_huawei_noise_stops_with_curc(emu: EmulatorProcess) -> None:
    with AtPort(link(emu, 2)) as port:
        port.expect(re.compile(rb"\^(RSSI|MODE|SRVST):"), 5)
        port.cmd("AT^CURC=0")
        assert b"^" not in port.drain(1.2)
        port.cmd("AT^CURC=1")


def test_simcom_boot_urcs(emu: EmulatorProcess) -> None:
    with AtPort(link(emu, 3)) as port:
        port.cmd("AT+CFUN=1,1")
        boot = port.expect(b"SMS Ready\r\n", 5)
        assert "RDY" in boot and "Call Ready" in boot


def test_quectel_qccid(emu: EmulatorProcess) -> None:
    with AtPort(link(emu, 5)) as port:
        assert f"+QCCID: {emu.state['modems'][4]['sims'][0]['iccid']}" in port.cmd("AT+QCCID")


def test_wavecom_cpin_has_no_ok(emu: EmulatorProcess) -> None:
    with AtPort(link(emu, 6)) as port:
        port.cmd("ATE0")
        port.write(b"AT+CPIN?\r")
        port.expect(b"+CPIN: READY\r\n")
        assert b"OK" not in port.drain(0.3)


def test_zte_urcs_inside_cmgs(emu: EmulatorProcess) -> None:
    with AtPort(link(emu, 7)) as port:
        port.cmd("ATE0")
        part = pdu.encode_submit(number(emu, 3), "zte", status_report=False)[0]
        out = port.send_pdu(part.tpdu_length, part.hex)
        assert out.index("+ZPASR") < out.index("+CMGS:")


# ---- faults over the pty ----------------------------------------------------------------------


def test_cms_error_fault(emu: EmulatorProcess, m1: AtPort) -> None:
    emu.client.set_faults("m1", {"cms_error": {"code": 41, "count": 1}})
    part = pdu.encode_submit(number(emu, 3), "x", status_report=False)[0]
    assert "+CMS ERROR: 41" in m1.send_pdu(part.tpdu_length, part.hex)
    assert "+CMGS:" in m1.send_pdu(part.tpdu_length, part.hex)


def test_no_network_fault(emu: EmulatorProcess, m1: AtPort) -> None:
    emu.client.set_faults("m1", {"no_network": True})
    assert "+CREG: 0,0" in m1.cmd("AT+CREG?")
    part = pdu.encode_submit(number(emu, 3), "x")[0]
    assert "+CMS ERROR: 331" in m1.send_pdu(part.tpdu_length, part.hex)


def test_hang_fault(emu: EmulatorProcess, m1: AtPort) -> None:
    emu.client.set_faults("m1", {"hang": {"command": "AT+CSQ", "count": 1}})
    m1.write(b"AT+CSQ\r")
    assert m1.drain(0.5) == b""
    assert m1.cmd("AT") == "\r\nOK\r\n"


def test_garbage_fault(emu: EmulatorProcess, m1: AtPort) -> None:
    emu.client.set_faults("m1", {"garbage": 0.1})
    data = m1.drain(0.6, limit=0.8)
    assert any(b in data for b in (0x00, 0xFF, 0xFE, 0x80))
    emu.client.clear_faults("m1")
    m1.drain(0.3)
    assert m1.cmd("AT") == "\r\nOK\r\n"


def test_latency_fault(emu: EmulatorProcess, m1: AtPort) -> None:
    emu.client.set_faults("m1", {"latency": 0.3})
    last = emu.client.submitted()
    since = last[-1]["id"] if last else 0
    before = time.monotonic()
    submit(m1, number(emu, 3), "slow", report=False)
    (record,) = emu.client.submitted(since=since)
    assert record["monotonic"] - before >= 0.3  # CLOCK_MONOTONIC is shared across processes


def test_unplug_and_replug(emu: EmulatorProcess) -> None:
    path = link(emu, 1)
    port = AtPort(path)
    try:
        assert port.cmd("AT").endswith("OK\r\n")
        emu.client.set_faults("m1", {"sim_busy": 0.5})
        emu.client.unplug("m1")
        assert not os.path.lexists(path)
        with pytest.raises(serial.SerialException):
            for _ in range(50):  # the hang-up shows on the next read or write
                port.serial.write(b"AT\r")
                port.serial.read(100)
    finally:
        port.close()
    emu.client.replug("m1")
    assert os.path.lexists(path)
    on_disk = json.loads((emu.state_dir / "emulator.json").read_text())
    assert on_disk["modems"][0]["port"] == os.path.realpath(path)
    with AtPort(path) as again:
        again.cmd("ATE0;+CMEE=1")
        assert "+CME ERROR: 14" in again.cmd("AT+CPIN?")  # SIM busy right after the boot
        wait_for(lambda: "READY" in again.cmd("AT+CPIN?"), 10)
    emu.client.clear_faults("m1")


# ---- dual SIM end to end ----------------------------------------------------------------------


def test_sim2_to_sim2_across_cdsds_and_qdsim(emu: EmulatorProcess) -> None:
    with AtPort(link(emu, 4)) as simcom, AtPort(link(emu, 5)) as quectel:
        for port in (simcom, quectel):
            port.cmd("ATE0;+CMEE=1")
        simcom.cmd("AT+CDSDS=2")
        quectel.cmd("AT+QDSIM=1")
        for port in (simcom, quectel):
            wait_registered(port)
            port.cmd("AT+CNMI=2,1,0,1,0")  # per-SIM settings are set again after a switch
        # SIMCom SIM 2 -> Quectel SIM 2, with a report that comes back DS-suffixed
        mr = submit(simcom, number(emu, 5, 1), "from SIMCom SIM2")
        got = read_stored(quectel, "+CMTI")
        assert (got.sender, got.text) == (number(emu, 4, 1), "from SIMCom SIM2")
        report_hex = simcom.expect(re.compile(rb"\+CDSDS: \d+" + PDU_URC.encode())).split()[-1]
        report = pdu.decode_incoming(bytes.fromhex(report_hex))
        assert isinstance(report, pdu.StatusReport) and report.message_reference == mr
        # and back: the SIM 2 URC of the SIMCom carries the DS suffix
        submit(quectel, number(emu, 4, 1), "reply from Quectel SIM2")
        got = read_stored(simcom, "+CMTIDS")
        assert (got.sender, got.text) == (number(emu, 5, 1), "reply from Quectel SIM2")
        # an SMS for the inactive SIM 1 waits until the modem switches back
        emu.client.send_sms("+4917011111111", number(emu, 4, 0), "for SIM 1 later")
        assert b"+CMTI" not in simcom.drain(0.3)
        simcom.cmd("AT+CDSDS=1")
        simcom.cmd("AT+CNMI=2,1,0,1,0")
        assert read_stored(simcom, "+CMTI").text == "for SIM 1 later"
        quectel.cmd("AT+QDSIM=0")


def test_two_port_layout_sim2_end_to_end(emu: EmulatorProcess) -> None:
    with AtPort(link(emu, 8, 1)) as sim2, AtPort(link(emu, 3)) as peer:
        for port in (sim2, peer):
            port.cmd("ATE0;+CMEE=1;+CNMI=2,1,0,1,0")
        assert emu.state["modems"][7]["sims"][1]["imsi"] in sim2.cmd("AT+CIMI")
        submit(sim2, number(emu, 3), "from port 2")
        got = read_stored(peer, "+CMTI")
        assert got.sender == number(emu, 8, 1)
        sim2.expect(re.compile(rb"\+CDS: \d+" + PDU_URC.encode()))
        submit(peer, number(emu, 8, 1), "to port 2", report=False)
        assert read_stored(sim2, "+CMTI").text == "to port 2"


# ---- the remaining faults over the pty (the in-process tests cover their details) -------------


def test_sim_missing_fault(emu: EmulatorProcess, m1: AtPort) -> None:
    emu.client.set_faults("m1", {"sim_missing": True})
    assert "+CME ERROR: 10" in m1.cmd("AT+CPIN?")
    assert "+CMS ERROR: 310" in m1.cmd("AT+CMGL=4")


def test_full_storage_fault(emu: EmulatorProcess, m1: AtPort) -> None:
    emu.client.set_faults("m1", {"full_storage": True})
    emu.client.send_sms("+4917033334444", number(emu, 1), "held while full")
    assert "+CMS ERROR: 322" in m1.cmd("AT+CMGW")
    assert emu.client.network()["pending"] >= 1
    emu.client.clear_faults("m1")
    got = read_stored(m1, "+CMTI")
    assert got.text == "held while full"


def test_pin_fault(emu: EmulatorProcess, m1: AtPort) -> None:
    emu.client.set_faults("m1", {"pin": "2468"})
    assert "+CPIN: SIM PIN" in m1.cmd("AT+CPIN?")
    assert "+CME ERROR: 11" in m1.cmd("AT+CIMI")
    assert m1.cmd('AT+CPIN="2468"').endswith("OK\r\n")
    assert "+CPIN: READY" in m1.cmd("AT+CPIN?")


def test_urc_in_reply_fault(emu: EmulatorProcess, m1: AtPort) -> None:
    emu.client.set_faults("m1", {"urc_in_reply": True, "latency": 0.5})
    part = pdu.encode_submit(number(emu, 3), "x", status_report=False)[0]
    m1.write(f"AT+CMGS={part.tpdu_length}\r".encode())
    m1.expect(b"> ")
    m1.write(part.hex.encode() + b"\x1a")
    emu.client.send_sms("+4917055556666", number(emu, 1), "arrives mid-submit")
    out = m1.expect(b"OK\r\n", 10)
    assert out.index("+CMTI:") < out.index("+CMGS:")
    index = int(out.split("+CMTI:")[1].split(",")[1].split("\r")[0])
    m1.cmd(f"AT+CMGD={index}")
