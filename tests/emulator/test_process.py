"""The real `simhive-emulator run` process: JSON on stdout and disk, links, SIGTERM, CLI errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from simhive.hardware.emulator.client import EmulatorClient, EmulatorError, start_emulator
from tests.support.procs import console_script

from .serialport import AtPort

pytestmark = pytest.mark.integration


def test_console_script_run_and_sigterm(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    argv = [
        console_script("simhive-emulator"),
        "run",
        "--modems",
        "3",
        "--profile",
        "sim800c-ds,generic",
        "--dual-sim",
        "cdsds,ports,none",
        "--state",
        str(state_dir),
        "--seed",
        "5",
        "--fault",
        "m3:no_network=true",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        printed = json.loads(line)
        on_disk = json.loads((state_dir / "emulator.json").read_text())
        assert printed == on_disk
        assert printed["pid"] == proc.pid
        assert printed["control"].startswith("http://127.0.0.1:")
        m1, m2, m3 = printed["modems"]
        assert (m1["profile"], m1["dual_sim"], len(m1["sims"])) == ("sim800c-ds", "cdsds", 2)
        assert (m2["profile"], m2["dual_sim"]) == ("generic", "ports")
        assert (m3["dual_sim"], len(m3["sims"])) == ("none", 1)
        numbers = [s["number"] for m in printed["modems"] for s in m["sims"]]
        assert len(set(numbers)) == len(numbers) == 5
        assert os.path.realpath(m1["link"]) == m1["port"]
        assert m1["sims"][1]["port"] is None
        # the two-port layout: one pty and link per SIM
        assert m2["sims"][0]["link"] == m2["link"]
        assert os.path.realpath(m2["sims"][1]["link"]) == m2["sims"][1]["port"] != m2["port"]
        client = EmulatorClient(printed["control"])
        assert client.modem("m3")["live"]["faults"]["no_network"] is True
        with AtPort(m2["sims"][1]["link"]) as port:
            assert port.cmd("AT").endswith("OK\r\n")
            assert m2["sims"][1]["imsi"] in port.cmd("AT+CIMI")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not os.path.lexists(m1["link"]) and not os.path.lexists(m2["sims"][1]["link"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_same_seed_same_identities(tmp_path: Path) -> None:
    a = start_emulator(modems=2, state_dir=tmp_path / "a", extra_args=["--seed", "42"])
    b = start_emulator(modems=2, state_dir=tmp_path / "b", extra_args=["--seed", "42"])
    try:
        strip = [
            [{k: s[k] for k in ("number", "iccid", "imsi")} for s in m["sims"]]
            for m in a.state["modems"]
        ]
        assert strip == [
            [{k: s[k] for k in ("number", "iccid", "imsi")} for s in m["sims"]]
            for m in b.state["modems"]
        ]
        assert [m["imei"] for m in a.state["modems"]] == [m["imei"] for m in b.state["modems"]]
    finally:
        assert a.stop() == 0 and b.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nokia-3310"], "unknown profile"),
        (["--dual-sim", "triple"], "--dual-sim must be one of"),
        (["--modems", "0"], "--modems"),
        (["--fault", "explode=true"], "unknown fault"),
        (["--fault", "m9:no_network=true"], "unknown modem"),
        (["--log-level", "LOUD"], "--log-level"),
        (["--state", "/proc/no/such/dir"], "--state"),
        (["--report-outcome", "maybe"], "--report-outcome"),
    ],
)
def test_cli_rejects_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simhive.hardware.emulator", "run", "--state", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_control_api_errors(tmp_path: Path) -> None:
    emu = start_emulator(modems=1, state_dir=tmp_path)
    try:
        client = emu.client
        with pytest.raises(EmulatorError) as err:
            client.set_faults("m9", {"no_network": True})
        assert err.value.status == 404
        with pytest.raises(EmulatorError) as err:
            client.set_faults("m1", {"latency": "slow"})
        assert err.value.status == 400 and "latency" in err.value.message
        with pytest.raises(EmulatorError) as err:
            client.send_sms("+4917000", "+4900000", "hi")
        assert err.value.status == 404
        with pytest.raises(EmulatorError) as err:
            client.set_sim("m1", 5, roaming=True)
        assert err.value.status == 404
        with pytest.raises(EmulatorError) as err:
            client.configure_network(rules=[{"pattern": "*", "outcome": "lost"}])
        assert err.value.status == 400
        request = urllib.request.Request(
            client.base_url + "/modems/m1/faults", data=b"{not json", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as http_err:
            urllib.request.urlopen(request, timeout=10)
        assert http_err.value.code == 400
        assert json.loads(http_err.value.read()) == {"error": "body is not valid JSON"}
    finally:
        assert emu.stop() == 0


def test_twenty_modems_and_network_options(tmp_path: Path) -> None:
    from simhive.agent.modem import pdu

    emu = start_emulator(
        modems=20,
        state_dir=tmp_path,
        extra_args=["--latency", "0.2", "--report-delay", "0.1", "--report-outcome", "failed"],
    )
    try:
        ports = [AtPort(m["link"]) for m in emu.state["modems"]]
        try:
            for port in ports:
                assert port.cmd("ATE0;+CMEE=1;+CNMI=2,1,0,1,0").endswith("OK\r\n")
            last = ports[-1]
            part = pdu.encode_submit("+4930123456", "to the outside")[0]
            started = time.monotonic()
            assert "+CMGS: 1" in last.send_pdu(part.tpdu_length, part.hex)
            (record,) = emu.client.submitted()
            assert record["modem"] == "m20" and record["monotonic"] - started >= 0.2
            urc = last.expect(re.compile(rb"\+CDS: \d+\r\n([0-9A-F]+)\r\n"))
            report = pdu.decode_incoming(bytes.fromhex(urc.split()[-1]))
            assert isinstance(report, pdu.StatusReport) and report.status == 0x41
        finally:
            for port in ports:
                port.close()
    finally:
        assert emu.stop() == 0


def test_control_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "simhive.hardware.emulator",
                "run",
                "--state",
                str(tmp_path),
                "--control-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"control port {port}" in result.stderr and "Traceback" not in result.stderr
