"""Gammu's AT driver accepts every profile: connect, identify, network, send with a report.

Each family's quirks (Huawei noise and ^PORTSEL, Wavecom's CPIN without OK, ZTE URCs inside the
+CMGS reply, SIMCom and Quectel boot URCs) must not stop a third-party stack.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simhive.hardware.emulator.client import EmulatorProcess, run_emulator

gammu = pytest.importorskip("gammu")

pytestmark = pytest.mark.integration

PROFILES = ["huawei-e173", "quectel-ec25", "wavecom", "zte", "sim800c-ds"]


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with run_emulator(
        modems=len(PROFILES) + 1,
        profile=",".join(PROFILES) + ",generic",
        dual_sim="none,none,none,none,cdsds,ports",
        state_dir=tmp_path_factory.mktemp("gammu-profiles"),
        extra_args=["--report-delay", "0.05", "--seed", "3"],
    ) as process:
        yield process


@pytest.mark.parametrize("index", range(len(PROFILES)), ids=PROFILES)
def test_gammu_drives_profile(emu: EmulatorProcess, index: int, tmp_path: Path) -> None:
    modem = emu.state["modems"][index]
    rc = tmp_path / "gammurc"
    rc.write_text(
        f"[gammu]\ndevice = {modem['link']}\nconnection = at115200\natgen_setcnmi = ,,,1\n"
        f"logfile = {tmp_path / 'gammu.log'}\nlogformat = textall\n"
    )
    sm = gammu.StateMachine()
    sm.ReadConfig(Filename=str(rc))
    sm.Init()
    try:
        assert sm.GetIMEI() == modem["imei"]
        assert sm.GetSIMIMSI() == modem["sims"][0]["imsi"]
        code = modem["sims"][0]["operator_code"]
        assert sm.GetNetworkInfo()["NetworkCode"] == f"{code[:3]} {code[3:]}"
        assert sm.GetSignalQuality()["SignalStrength"] < 0
        events: list[dict[str, Any]] = []
        sm.SetIncomingCallback(lambda _sm, _kind, data: events.append(data))
        sm.SetIncomingSMS(True)
        mr = sm.SendSMS(
            {
                "Text": "profile check",
                "SMSC": {"Location": 1},
                "Number": "+4930123456",
                "Type": "Status_Report",
            }
        )
        deadline = time.monotonic() + 20
        while not any(e.get("MessageReference") == mr for e in events):
            assert time.monotonic() < deadline, f"no report; events {events}"
            sm.ReadDevice()
            time.sleep(0.05)
        sent = emu.client.submitted(modem=modem["id"])
        assert sent[-1]["reference"] == mr and sent[-1]["text"] == "profile check"
    finally:
        sm.Terminate()


def test_gammu_on_sim2_port_of_two_port_modem(emu: EmulatorProcess, tmp_path: Path) -> None:
    """SIM 2 behind its own port is an ordinary modem to Gammu: its identity, its inbox."""
    modem = emu.state["modems"][len(PROFILES)]
    sim2 = modem["sims"][1]
    assert sim2["link"] is not None
    rc = tmp_path / "gammurc"
    rc.write_text(f"[gammu]\ndevice = {sim2['link']}\nconnection = at115200\n")
    sm = gammu.StateMachine()
    sm.ReadConfig(Filename=str(rc))
    sm.Init()
    try:
        assert sm.GetSIMIMSI() == sim2["imsi"]
        events: list[dict[str, Any]] = []
        sm.SetIncomingCallback(lambda _sm, _kind, data: events.append(data))
        sm.SetIncomingSMS(True)
        emu.client.send_sms("+4917012121212", sim2["number"], "hello SIM 2")
        deadline = time.monotonic() + 20
        while not events:
            assert time.monotonic() < deadline, "no +CMTI for SIM 2"
            sm.ReadDevice()
            time.sleep(0.05)
        (sms,) = sm.GetSMS(Folder=0, Location=events[0]["Location"])
        assert (sms["Number"], sms["Text"]) == ("+4917012121212", "hello SIM 2")
    finally:
        sm.Terminate()
