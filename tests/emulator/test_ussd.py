"""USSD in the emulator, over a real pty: scripted replies per SIM, the +CUSD answer after the
OK, packed GSM 7-bit on Huawei, UCS-2 for other text, "not supported" for unknown codes, the
SIM and network errors, and the control API's validation."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simhive.agent.modem import gsm7
from simhive.hardware.emulator.client import EmulatorError, EmulatorProcess, run_emulator

from .serialport import AtPort

pytestmark = pytest.mark.integration

CUSD = re.compile(rb'\r\n\+CUSD(DS)?: (\d)(?:,"([^"]*)",(\d+))?\r\n')


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with run_emulator(modems=2, profile="generic,huawei-e173") as e:
        for m in ("m1", "m2"):
            e.client.set_sim(m, 0, ussd={"*100#": "Balance: 5.00 EUR", "*102#": "Баланс 7 руб"})
        yield e


def ask(emu: EmulatorProcess, modem: str, code: str) -> tuple[str, ...]:
    link = next(m["link"] for m in emu.state["modems"] if m["id"] == modem)
    with AtPort(link) as port:
        assert port.cmd("AT+CMEE=1").endswith("OK\r\n")
        assert port.cmd(f'AT+CUSD=1,"{code}",15').endswith("OK\r\n")  # OK first, then +CUSD
        m = CUSD.search(port.expect(CUSD).encode("latin-1"))
        assert m is not None
        return tuple((g or b"").decode("latin-1") for g in m.groups()[1:])


def test_scripted_replies_in_each_coding(emu: EmulatorProcess) -> None:
    assert ask(emu, "m1", "*100#") == ("0", "Balance: 5.00 EUR", "15")
    status, hexed, dcs = ask(emu, "m1", "*102#")
    assert (status, dcs) == ("0", "72") and bytes.fromhex(hexed).decode(
        "utf-16-be"
    ) == "Баланс 7 руб"
    status, packed, dcs = ask(emu, "m2", "*100#")  # Huawei: the septets packed, in hex
    raw = bytes.fromhex(packed)
    assert (status, dcs) == ("0", "15")
    assert gsm7.decode(gsm7.unpack(raw, len("Balance: 5.00 EUR"))) == "Balance: 5.00 EUR"
    assert ask(emu, "m1", "*999#") == ("4", "", "")  # no script for it: not supported


def test_sim_and_network_errors(emu: EmulatorProcess) -> None:
    link = emu.state["modems"][0]["link"]
    try:
        emu.client.set_faults("m1", {"no_network": True})
        with AtPort(link) as port:
            port.cmd("AT+CMEE=1")
            assert "+CME ERROR: 30" in port.cmd('AT+CUSD=1,"*100#",15')
        emu.client.set_faults("m1", {"no_network": False, "sim_missing": True})
        with AtPort(link) as port:
            port.cmd("AT+CMEE=1")
            assert "+CME ERROR: 10" in port.cmd('AT+CUSD=1,"*100#",15')
            assert port.cmd("AT+CUSD=2").endswith("OK\r\n")  # ending a session needs no SIM
    finally:
        emu.client.clear_faults("m1")


def test_control_api_sets_removes_and_validates(emu: EmulatorProcess) -> None:
    live = emu.client.set_sim("m1", 0, ussd={"*200#": "hi", "*100#": None})
    assert live["sims"][0]["ussd"] == {"*102#": "Баланс 7 руб", "*200#": "hi"}
    assert ask(emu, "m1", "*100#")[0] == "4"
    for bad in ({"*1#": 5}, ["*1#"], {"": "x"}):
        with pytest.raises(EmulatorError) as err:
            emu.client.set_sim("m1", 0, ussd=bad)
        assert err.value.status == 400 and "ussd" in err.value.message
    emu.client.set_sim("m1", 0, ussd={"*100#": "Balance: 5.00 EUR", "*200#": None})


def test_replies_scripted_on_the_command_line(tmp_path: Path) -> None:
    with run_emulator(
        modems=2, dual_sim="cdsds", profile="sim800c-ds", state_dir=tmp_path,
        extra_args=["--ussd", "*100#=Balance: 1.00 EUR", "--ussd", "m2:1:*100#=Balance: 2 EUR"],
    ) as e:  # fmt: skip
        scripts = [[s["ussd"] for s in e.client.modem(m)["live"]["sims"]] for m in ("m1", "m2")]
    assert scripts == [
        [{"*100#": "Balance: 1.00 EUR"}, {"*100#": "Balance: 1.00 EUR"}],
        [{"*100#": "Balance: 1.00 EUR"}, {"*100#": "Balance: 2 EUR"}],
    ]


@pytest.mark.parametrize(
    ("arg", "message"),
    [("*100#", "expected [MODEM[:SLOT]:]CODE=TEXT"), ("m9:*100#=x", "no modem 'm9'"),
     ("AT+CMGD=x", "a USSD code is digits")],
)  # fmt: skip
def test_bad_ussd_options_are_refused(tmp_path: Path, arg: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simhive.hardware.emulator", "run", "--state", str(tmp_path),
         "--ussd", arg],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
