"""python-gammu's AT driver (an independent, third-party stack) against the emulator over ptys.

One emulator process and one Gammu connection are shared by the module: Gammu's Init takes about
4 s. The tests run in file order; each waits for its own events, never for fixed times.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from simhive.agent.modem import pdu
from simhive.hardware.emulator.client import EmulatorProcess, run_emulator

gammu = pytest.importorskip("gammu")  # installed with the test extra; the oracle of these tests

pytestmark = pytest.mark.integration


class GammuPhone:
    def __init__(self, device: str, workdir: Path) -> None:
        rc = workdir / "gammurc"
        # ReadConfig, not SetConfig: only a gammurc carries atgen_setcnmi;
        # ",,,1" asks for direct +CDS reports, which reach the incoming callback.
        rc.write_text(
            f"[gammu]\ndevice = {device}\nconnection = at115200\natgen_setcnmi = ,,,1\n"
            f"logfile = {workdir / 'gammu.log'}\nlogformat = textall\n"
        )
        self.sm = gammu.StateMachine()
        self.sm.ReadConfig(Filename=str(rc))
        self.sm.Init()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.sm.SetIncomingCallback(self._on_event)
        self.sm.SetIncomingSMS(True)

    def _on_event(self, _sm: Any, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))  # callbacks may only queue

    def pump_until(self, found: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.sm.ReadDevice()
            value = found()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching Gammu event; got {self.events!r}")
            time.sleep(0.05)

    def reports(self) -> dict[int, dict[str, Any]]:
        return {
            d["MessageReference"]: d
            for kind, d in self.events
            if kind == "SMS" and d.get("Type") == "Status_Report"
        }

    def stored_locations(self) -> list[int]:
        return [
            d["Location"]
            for kind, d in self.events
            if kind == "SMS" and d.get("Type") != "Status_Report" and d.get("Location")
        ]


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    state = tmp_path_factory.mktemp("gammu-emu")
    with run_emulator(
        modems=2, profile="sim800c,generic", state_dir=state, extra_args=["--report-delay", "0.1"]
    ) as process:
        yield process


@pytest.fixture(scope="module")
def phone(emu: EmulatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GammuPhone]:
    p = GammuPhone(emu.state["modems"][0]["link"], tmp_path_factory.mktemp("gammu"))
    yield p
    p.sm.Terminate()


def test_identify(emu: EmulatorProcess, phone: GammuPhone) -> None:
    m1 = emu.state["modems"][0]
    # Gammu 1.43+ names SIMCOM_Ltd "SIMCOM"; Debian 12's 1.42 (python-gammu built from source on
    # 32-bit ARM, see scripts/bootstrap) keeps the modem's own string.
    assert phone.sm.GetManufacturer() in ("SIMCOM", "SIMCOM_Ltd")
    assert phone.sm.GetModel()[1] == "SIMCOM_SIM800C"
    assert phone.sm.GetIMEI() == m1["imei"]
    assert phone.sm.GetSIMIMSI() == m1["sims"][0]["imsi"]
    assert phone.sm.GetFirmware()[0] == "Revision:1418B05SIM800C24"
    assert phone.sm.GetSecurityStatus() is None  # no PIN needed


def test_network_info_and_signal(emu: EmulatorProcess, phone: GammuPhone) -> None:
    sim = emu.state["modems"][0]["sims"][0]
    live = emu.client.modem("m1")["live"]["sims"][0]
    info = phone.sm.GetNetworkInfo()
    code = sim["operator_code"]
    assert info["NetworkCode"] == f"{code[:3]} {code[3:]}"
    assert info["State"] == "HomeNetwork"
    assert info["NetworkName"] == sim["operator"]
    assert info["GPRS"] == "Attached"
    signal = phone.sm.GetSignalQuality()
    assert signal["SignalStrength"] == live["signal_dbm"]


def test_roaming_is_reported(emu: EmulatorProcess, phone: GammuPhone) -> None:
    live = emu.client.set_sim("m1", 0, roaming=True)["sims"][0]
    try:
        info = phone.sm.GetNetworkInfo()
        assert info["State"] == "RoamingNetwork"
        # a foreign serving network: another MCC than the SIM's home network
        assert live["operator_code"][:3] != live["home_operator_code"][:3]
        assert info["NetworkCode"].replace(" ", "") == live["operator_code"]
        on_disk = json.loads((emu.state_dir / "emulator.json").read_text())
        assert on_disk["modems"][0]["sims"][0]["operator_code"] == live["operator_code"]
    finally:
        emu.client.set_sim("m1", 0, roaming=False)
    assert phone.sm.GetNetworkInfo()["State"] == "HomeNetwork"


def test_send_single_with_status_report(emu: EmulatorProcess, phone: GammuPhone) -> None:
    to = emu.state["modems"][1]["sims"][0]["number"]
    before = len(emu.client.submitted())
    mr = phone.sm.SendSMS(
        {"Text": "Hello from Gammu", "SMSC": {"Location": 1}, "Number": to, "Type": "Status_Report"}
    )
    report = phone.pump_until(lambda: phone.reports().get(mr))
    assert report["DeliveryStatus"] == 0 and report["Number"] == to
    (sent,) = emu.client.submitted()[before:]
    assert (sent["to"], sent["text"], sent["reference"]) == (to, "Hello from Gammu", mr)
    assert sent["status_report"] is True
    assert int(sent["pdu"][:2], 16) == 7  # Gammu put the SMSC from AT+CSCA? into the PDU


def test_send_multipart_unicode_with_reports(emu: EmulatorProcess, phone: GammuPhone) -> None:
    to = emu.state["modems"][1]["sims"][0]["number"]
    text = "Grüße, Привет, 你好! " * 6
    parts = gammu.EncodeSMS(
        {"Unicode": True, "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": text}]}
    )
    assert len(parts) >= 2
    before = len(emu.client.submitted())
    mrs = []
    for part in parts:
        part.update(SMSC={"Location": 1}, Number=to, Type="Status_Report")
        mrs.append(phone.sm.SendSMS(part))
    reports = phone.pump_until(lambda: all(mr in phone.reports() for mr in mrs) and phone.reports())
    assert all(reports[mr]["DeliveryStatus"] == 0 for mr in mrs)
    sent = emu.client.submitted()[before:]
    assert [s["reference"] for s in sent] == mrs
    assert {s["coding"] for s in sent} == {"ucs2"} and {s["parts"] for s in sent} == {len(parts)}
    assert len({s["concat_reference"] for s in sent}) == 1
    assert "".join(s["text"] for s in sorted(sent, key=lambda s: s["part"])) == text


def test_receive_from_other_modem_then_delete(emu: EmulatorProcess, phone: GammuPhone) -> None:
    me = emu.state["modems"][0]["sims"][0]["number"]
    sender = emu.state["modems"][1]["sims"][0]["number"]
    part = pdu.encode_submit(me, "Hi Gammu, from modem 2", status_report=False)[0]
    with serial.Serial(emu.state["modems"][1]["link"], 115200, timeout=10) as port:
        port.write(b"ATE0\r")
        assert port.read_until(b"OK\r\n").endswith(b"OK\r\n")
        port.write(f"AT+CMGS={part.tpdu_length}\r".encode())
        assert port.read_until(b"> ").endswith(b"> ")
        port.write(part.hex.encode() + b"\x1a")
        assert b"+CMGS:" in port.read_until(b"OK\r\n")
    seen = len(phone.stored_locations())
    phone.pump_until(lambda: len(phone.stored_locations()) > seen)
    location = phone.stored_locations()[-1]
    (sms,) = phone.sm.GetSMS(Folder=0, Location=location)
    assert (sms["Number"], sms["Text"]) == (sender, "Hi Gammu, from modem 2")
    phone.sm.DeleteSMS(Folder=0, Location=location)
    with pytest.raises(gammu.GSMError):
        phone.sm.GetSMS(Folder=0, Location=location)
    memories = emu.client.storage("m1")["slots"][0]["memories"]
    assert all(m["address"] != sender for m in memories["SM"]["messages"])


def test_read_and_delete_stored_messages(emu: EmulatorProcess, phone: GammuPhone) -> None:
    me = emu.state["modems"][0]["sims"][0]["number"]
    # no GSM extension characters here: Gammu 1.45's decoder appends junk after them (its own
    # EncodePDU yields the same PDU as ours, so the quirk is in the decoder, not the emulator)
    texts = {"first stored", "second stored", "Grüße à Zoë"}
    seen = len(phone.stored_locations())
    for text in sorted(texts):
        emu.client.send_sms("+4917012345678", me, text)
    phone.pump_until(lambda: len(phone.stored_locations()) >= seen + len(texts))
    found: dict[str, int] = {}
    sms = phone.sm.GetNextSMS(Folder=0, Start=True)
    while True:
        found[sms[0]["Text"]] = sms[0]["Location"]
        assert sms[0]["Number"] == "+4917012345678"
        try:
            sms = phone.sm.GetNextSMS(Folder=0, Location=sms[0]["Location"])
        except gammu.ERR_EMPTY:
            break
    assert texts <= set(found)
    for location in found.values():
        phone.sm.DeleteSMS(Folder=0, Location=location)
    with pytest.raises(gammu.ERR_EMPTY):
        phone.sm.GetNextSMS(Folder=0, Start=True)
    assert emu.client.storage("m1")["slots"][0]["memories"]["SM"]["used"] == 0
