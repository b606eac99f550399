"""`probe`, `check-config` and `ussd` against the real emulator: an unusable modem is a
non-zero exit with a clear line, a config is checked against the host it runs on, and USSD
answers come back decoded (GSM-7 text, Huawei's packed hex, UCS-2), also from SIM 2 of a
single-standby modem."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from simhive.agent.cli import main
from simhive.agent.launch import RedactSecrets
from simhive.hardware.emulator.client import EmulatorProcess, run_emulator
from tests.agent.fakeserver import FakeAgentServer
from tests.support.procs import console_script

pytestmark = pytest.mark.integration

TOKEN = "0123456789abcdef0123456789abcdef"
BALANCE = "Ihr Guthaben: 3,50 EUR. Gueltig bis 31.12."
CYRILLIC = "Баланс 12.30 руб"

# The holder is this test process; its name is "pytest" alone and "python" under xdist.
ME = Path(f"/proc/{os.getpid()}/comm").read_text().strip()


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    # The CLI run in-process (CliRunner) sets up logging as a process would (root level and
    # handler); later tests in this process must get the logging they started with.
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
    for handler in list(root.handlers):  # the CLI's own (pytest re-adds its own per phase)
        if any(isinstance(f, RedactSecrets) for f in handler.filters):
            root.removeHandler(handler)


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with run_emulator(
        modems=3, profile="generic,huawei-e173,sim800c-ds", dual_sim="none,none,cdsds"
    ) as e:
        for m in e.state["modems"]:
            for slot in range(len(m["sims"])):
                e.client.set_sim(m["id"], slot, ussd={"*100#": f"SIM {slot + 1}: {BALANCE}",
                                                      "*101#": CYRILLIC})  # fmt: skip
        yield e


@pytest.fixture
def clean(emu: EmulatorProcess) -> Iterator[EmulatorProcess]:
    emu.client.clear_faults("m1")
    yield emu
    emu.client.clear_faults("m1")


def port(emu: EmulatorProcess, i: int = 0) -> str:
    return str(emu.state["modems"][i]["link"])


def write_config(
    tmp_path: Path,
    emu: EmulatorProcess,
    *,
    token: str = TOKEN,
    server: str = "http://127.0.0.1:1",
    journal: str | None = None,
) -> Path:
    text = f'server = "{server}"\njournal = "{journal or tmp_path / "j" / "journal.sqlite3"}"\n'
    for i, m in enumerate(emu.state["modems"]):
        dual = f'dual_sim = "{m["dual_sim"]}"\n' if m["dual_sim"] == "cdsds" else ""
        tok = token if i == 0 else f"{i:x}" * 32
        text += f'[[device]]\nname = "{m["id"]}"\ntoken = "{tok}"\nport = "{m["link"]}"\n{dual}'
    cfg = tmp_path / "agent.toml"
    cfg.write_text(text)
    return cfg


def probe(p: str) -> Result:
    return CliRunner().invoke(main, ["probe", p])


# -- probe ----------------------------------------------------------------------------------


def test_probe_of_a_usable_modem_exits_zero(clean: EmulatorProcess) -> None:
    out = probe(port(clean))
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["sims"][0]["registered"] is True


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"pin": "1234"}, 'SIM not ready (pin: SIM asks for a PIN and none is configured); the'
                          ' SIM wants its PIN: set pin = "'),
        ({"sim_missing": True}, "SIM not ready (missing: SIM not inserted); insert a SIM"),
        ({"no_network": True}, "not registered to a network; check the antenna"),
    ],
    ids=["pin", "no-sim", "no-network"],
)  # fmt: skip
def test_probe_of_an_unusable_modem_exits_one(
    clean: EmulatorProcess, fault: dict[str, Any], words: str
) -> None:
    clean.client.set_faults("m1", fault)
    out = probe(port(clean))
    assert out.exit_code == 1, out.output
    assert f"modem on {port(clean)} is not usable: {words}" in out.output
    assert "Traceback" not in out.output


def test_probe_of_a_modem_that_does_not_answer_exits_one() -> None:
    master, slave = os.openpty()  # a tty with nobody behind it
    try:
        out = probe(os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
    assert out.exit_code == 1
    assert "not usable: " in out.output and "does not answer AT" in out.output


# -- check-config -----------------------------------------------------------------------------


def check(cfg: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [console_script("simhive-agent"), "check-config", str(cfg), *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_check_config_passes_real_ports_and_good_tokens(clean: EmulatorProcess,
                                                        tmp_path: Path) -> None:  # fmt: skip
    out = check(write_config(tmp_path, clean))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("ok: ")


def test_check_config_fails_a_short_token_a_missing_port_and_an_unwritable_journal(
    clean: EmulatorProcess, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")  # the journal's "directory" is a file
    cfg = write_config(tmp_path, clean, token="abc", journal=str(tmp_path / "file" / "j.db"))
    cfg.write_text(cfg.read_text() + '[[device]]\nname = "gone"\ntoken = "' + "e" * 32 + '"\n'
                   'port = "/dev/ttyUSB97"\n')  # fmt: skip
    out = check(cfg)
    assert out.returncode == 1
    assert "problem: device 'm1': the token has 3 characters" in out.stderr
    assert "problem: /dev/ttyUSB97: /dev/ttyUSB97 does not exist" in out.stderr
    assert f"problem: journal {tmp_path / 'file' / 'j.db'}: cannot write" in out.stderr
    assert "abc" not in out.stdout  # the token itself is never printed


def test_check_config_fails_a_port_another_process_holds(clean: EmulatorProcess,
                                                         tmp_path: Path) -> None:  # fmt: skip
    import serial

    with serial.Serial(port(clean), exclusive=True):
        out = check(write_config(tmp_path, clean))
    assert out.returncode == 1
    held = f"problem: {port(clean)}: {port(clean)} is held by {ME} (pid {os.getpid()})"
    assert held in out.stderr, out.stderr


async def test_check_config_online_tries_the_token(
    clean: EmulatorProcess, tmp_path: Path, server: FakeAgentServer
) -> None:
    cfg = write_config(tmp_path, clean, server=server.url)
    for i in range(3):
        server.tokens[TOKEN if i == 0 else f"{i:x}" * 32] = i + 1
    out = await asyncio.to_thread(check, cfg, "--online")
    assert out.returncode == 0, out.stdout + out.stderr
    server.tokens.pop(TOKEN)
    out = await asyncio.to_thread(check, cfg, "--online")
    assert out.returncode == 1
    assert "the server refuses the device token (401)" in out.stderr
    assert "device create" in out.stderr


# -- ussd -------------------------------------------------------------------------------------


def ussd(cfg: Path, device: str, slot: int, code: str) -> subprocess.CompletedProcess[str]:
    argv = [console_script("simhive-agent"), "ussd", device, str(slot), code, "--config",
            str(cfg), "--json"]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("device", "slot", "code", "text", "dcs"),
    [
        ("m1", 0, "*100#", f"SIM 1: {BALANCE}", 15),
        ("m1", 0, "*101#", CYRILLIC, 72),
        ("m2", 0, "*100#", f"SIM 1: {BALANCE}", 15),  # Huawei: packed septets in hex
        ("m2", 0, "*101#", CYRILLIC, 72),
        ("m3", 1, "*100#", f"SIM 2: {BALANCE}", 15),  # SIM 2 of a SIM800C-DS: a switch first
    ],
    ids=["gsm7", "ucs2", "huawei-packed", "huawei-ucs2", "dual-sim-slot-1"],
)  # fmt: skip
def test_ussd_prints_the_decoded_answer(
    emu: EmulatorProcess, tmp_path: Path, device: str, slot: int, code: str, text: str, dcs: int
) -> None:
    out = ussd(write_config(tmp_path, emu), device, slot, code)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert (answer["text"], answer["dcs"], answer["status"]) == (text, dcs, 0)
    expected = (3.5, "EUR") if code == "*100#" else (12.3, "руб")
    assert (answer["amount"], answer["currency"]) == expected


def test_ussd_failures_are_one_line_and_non_zero(emu: EmulatorProcess, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, emu)
    out = ussd(cfg, "m1", 0, "*999#")  # no scripted answer: the network says not supported
    assert out.returncode == 1 and "the network answered operation not supported" in out.stderr
    out = ussd(cfg, "m1", 0, 'AT"+CMGD')
    assert out.returncode == 2 and "a USSD code is digits" in out.stderr
    out = ussd(cfg, "nope", 0, "*100#")
    assert out.returncode == 2 and "no device 'nope'" in out.stderr
    out = ussd(cfg, "m1", 1, "*100#")
    assert out.returncode == 2 and "has SIM slots [0], not 1" in out.stderr
    for o in (out,):
        assert "Traceback" not in o.stderr


def test_ussd_on_the_gammu_backend_says_it_cannot(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('server = "http://127.0.0.1:1"\njournal = "j.db"\n[[device]]\nname = "g"\n'
                   f'token = "{TOKEN}"\nbackend = "gammu"\nport = "/dev/ttyUSB3"\n')  # fmt: skip
    out = CliRunner().invoke(main, ["ussd", "g", "0", "*100#", "--config", str(cfg)])
    assert out.exit_code == 1 and 'cannot send USSD here; use backend = "at"' in out.output
