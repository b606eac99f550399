"""`simhive-agent run` as a process, as a new user meets it: a server that is down from the
start is named in the log (URL, cause, hint) and its return is logged; a port another process
holds is named with its holder and never followed by "modem started"; and prepaid balances
asked by USSD reach the server with the SIM info, with a warning below the threshold."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from simhive.agent.client import AgentClient
from simhive.agent.sync import UNREACHABLE_LOG_SECONDS, Sync
from simhive.hardware.emulator.client import run_emulator
from tests.agent.fakes import wait_for
from tests.agent.fakeserver import FakeAgentServer
from tests.support.procs import console_script, free_port, running

pytestmark = pytest.mark.integration

# The holder is this test process; its name is "pytest" alone and "python" under xdist.
ME = Path(f"/proc/{os.getpid()}/comm").read_text().strip()


def write_config(path: Path, server: str, token: str, port: str, extra: str = "") -> None:
    path.write_text(
        f'server = "{server}"\njournal = "{path.parent / "journal.sqlite3"}"\n'
        f'log_level = "info"\n\n[[device]]\nname = "emu1"\ntoken = "{token}"\n'
        f'port = "{port}"\nprofile = "generic"\n{extra}'
    )


async def test_a_server_down_from_the_start_is_named_and_its_return_logged(
    tmp_path: Path,
) -> None:
    server = FakeAgentServer()
    token = server.add_device(7)
    port = free_port()  # nothing listens here until the server starts below
    log = tmp_path / "agent.log"
    with run_emulator(modems=1, profile="generic", state_dir=tmp_path / "emu") as emu:
        cfg = tmp_path / "agent.toml"
        write_config(cfg, f"http://127.0.0.1:{port}", token, emu.state["modems"][0]["link"])
        with running([console_script("simhive-agent"), "run", "--config", str(cfg)], log=log):
            url = f"http://127.0.0.1:{port}"
            await wait_for(lambda: f"cannot reach the server at {url}" in log.read_text(),
                           limit=60, what="the unreachable warning")  # fmt: skip
            # Several loops fail and retry meanwhile; the modem comes up as well.
            await wait_for(lambda: "modem started" in log.read_text(), limit=60, what="modem")
            await server.start(port)
            try:
                await wait_for(lambda: "reachable again" in log.read_text(), limit=60,
                               what="the server's return logged")  # fmt: skip
                await wait_for(lambda: bool(server.hellos), limit=30, what="a hello")
            finally:
                await server.stop()
    text = log.read_text()
    warning = next(ln for ln in text.splitlines() if "cannot reach the server" in ln)
    assert " WARNING " in warning and "Connect call failed" in warning
    assert "is simhive-server running" in warning  # the hint for "connection refused"
    outage = text.split("reachable again")[0]  # (stopping the server at the end is another)
    assert len(re.findall("cannot reach the server", outage)) == 1, "once, not once per retry"
    assert len(re.findall("Connect call failed", outage)) == 1
    assert re.search(rf"WARNING .*server {re.escape(url)} reachable again after \d+ s", text)
    assert token not in text


def test_the_outage_warning_repeats_at_its_interval_not_per_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    sync = Sync(
        device="d", client=AgentClient("http://127.0.0.1:9", "t", None),  # type: ignore[arg-type]
        journal=None, slots=[0], hello_payload=None, sims_payload=None,  # type: ignore[arg-type]
        on_settings=lambda s: None, on_work=lambda: None, clock=lambda: now[0],
    )  # fmt: skip
    caplog.set_level(logging.WARNING, logger="simhive.agent.sync")
    for _ in range(50):  # retries every 10 s for 500 s
        sync._set_connected(False, "hello: ClientConnectorError: Connect call failed")
        now[0] += 10.0
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 + int(490 // UNREACHABLE_LOG_SECONDS), warnings
    assert "for 300 s" in warnings[1]
    sync._set_connected(True)
    assert "reachable again after 500 s" in caplog.records[-1].getMessage()


async def test_a_held_port_names_its_holder_and_no_modem_started(tmp_path: Path) -> None:
    import serial

    server = FakeAgentServer()
    await server.start()
    token = server.add_device(8)
    log = tmp_path / "agent.log"
    try:
        with run_emulator(modems=1, profile="generic", state_dir=tmp_path / "emu") as emu:
            link = emu.state["modems"][0]["link"]
            cfg = tmp_path / "agent.toml"
            write_config(cfg, server.url, token, link)
            with serial.Serial(link, exclusive=True), running(
                [console_script("simhive-agent"), "run", "--config", str(cfg)], log=log
            ):  # fmt: skip
                await wait_for(lambda: "modem not available" in log.read_text(), limit=60,
                               what="the port error")  # fmt: skip
    finally:
        await server.stop()
    text = log.read_text()
    line = next(ln for ln in text.splitlines() if "modem not available" in ln)
    assert " ERROR " in line and "port busy" in line
    assert f"is held by {ME} (pid {os.getpid()})" in line
    assert "fuser -v" in line
    assert "modem started" not in text and "Could not exclusively lock" not in line


async def test_balance_checks_reach_the_server_and_warn_when_low(
    server: FakeAgentServer, tmp_path: Path
) -> None:
    token = server.add_device(9)
    log = tmp_path / "agent.log"
    with run_emulator(modems=1, profile="sim800c-ds", dual_sim="cdsds",
                      state_dir=tmp_path / "emu") as emu:  # fmt: skip
        modem = emu.state["modems"][0]
        emu.client.set_sim("m1", 0, ussd={"*100#": "Ihr Guthaben: 3,50 EUR"})
        emu.client.set_sim("m1", 1, ussd={"*101#": "Balance: 25.00 EUR"})
        cfg = tmp_path / "agent.toml"
        write_config(
            cfg, server.url, token, modem["link"],
            'dual_sim = "cdsds"\nbalance_ussd = ["*100#", "*101#"]\n'
            "balance_warn_below = [5, 5]\nbalance_interval_seconds = 2\n",
        )  # fmt: skip
        cfg.write_text(cfg.read_text().replace('profile = "generic"', 'profile = "sim800c-ds"'))

        def balances() -> dict[int, dict[str, object]]:
            return {s["slot"]: s["balance"] for st in server.statuses for s in st.get("sims", [])
                    if s.get("balance")}  # fmt: skip

        with running([console_script("simhive-agent"), "run", "--config", str(cfg)], log=log):
            try:
                await wait_for(lambda: set(balances()) == {0, 1}, limit=60,
                               what="both SIMs' balances at the server")  # fmt: skip
                # The next check (2 s later) sends a fresh one: the check is periodic.
                first = balances()[0]["checked_at"]
                await wait_for(lambda: balances()[0]["checked_at"] != first, limit=30,
                               what="a second balance check")  # fmt: skip
            except AssertionError:
                raise AssertionError(log.read_text()[-4000:]) from None
    got = balances()
    assert got[0]["amount"] == 3.5 and got[0]["currency"] == "EUR" and got[0]["low"] is True
    assert got[0]["text"] == "Ihr Guthaben: 3,50 EUR"
    assert got[1]["amount"] == 25.0 and got[1]["low"] is False
    text = log.read_text()
    # Warned when it was found low, not again at every later check of the same amount.
    assert len(re.findall(r"WARNING .*SIM 1: prepaid balance 3\.5 EUR is below 5", text)) == 1
    assert "SIM 2: prepaid balance" not in text
