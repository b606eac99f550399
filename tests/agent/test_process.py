"""`simhive-agent run` as a real process against the real modem emulator (ptys) and the in-test
protocol server: the agent's whole path over a real AT backend, and its SIGTERM behaviour.
The end-to-end suite with the real server lands with the server's /agent/v1 routes."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from simhive.hardware.emulator.client import run_emulator
from tests.agent.fakes import wait_for
from tests.agent.fakeserver import FakeAgentServer
from tests.support.procs import console_script, running

pytestmark = pytest.mark.integration


def write_config(path: Path, server: str, token: str, journal: Path, port: str, **dev: str) -> None:
    extra = "".join(f'{k} = "{v}"\n' for k, v in dev.items())
    path.write_text(
        f'server = "{server}"\njournal = "{journal}"\nlog_level = "debug"\n'
        f"retry_backoff_seconds = 0.5\nsim_visit_seconds = 2\n\n"
        f'[[device]]\nname = "emu1"\ntoken = "{token}"\n'
        f'port = "{port}"\n{extra}'
    )


async def test_agent_process_sends_receives_and_stops_cleanly(
    server: FakeAgentServer, tmp_path: Path
) -> None:
    token = server.add_device(300)
    with run_emulator(
        modems=1,
        profile="sim800c-ds",
        dual_sim="cdsds",
        state_dir=tmp_path / "emu",
        extra_args=["--report-delay", "0.2"],
    ) as emu:
        modem = emu.state["modems"][0]
        sim1, sim2 = (s["number"] for s in modem["sims"])
        cfg = tmp_path / "agent.toml"
        write_config(
            cfg,
            server.url,
            token,
            tmp_path / "journal.sqlite3",
            modem["link"],
            profile="sim800c-ds",
            dual_sim="cdsds",
        )
        # SIM 1 texts SIM 2 and back: both outgoing on one single-standby modem, and both
        # arrive back on the same modem as incoming SMS.
        a = await server.add(300, sim2, "from SIM 1 to SIM 2", sim=0)
        b = await server.add(300, sim1, "from SIM 2 to SIM 1, with ü", sim=1)
        log = tmp_path / "agent.log"
        with running(
            [console_script("simhive-agent"), "run", "--config", str(cfg)], log=log
        ) as proc:
            try:
                await wait_for(
                    lambda: server.messages[a].status == 7 and server.messages[b].status == 7,
                    limit=90,
                    what="both messages delivered",
                )
                await wait_for(
                    lambda: len(server.incoming) == 2, limit=90, what="both SMS received"
                )
            except AssertionError:
                raise AssertionError(log.read_text()[-4000:]) from None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        text = log.read_text()
        assert token not in text
    assert server.messages[a].history == [1, 2, 3, 6, 7]
    bodies = {m["body"]: m for m in server.incoming.values()}
    assert bodies["from SIM 1 to SIM 2"]["sim"] == 1
    assert bodies["from SIM 1 to SIM 2"]["from"] == sim1
    assert bodies["from SIM 2 to SIM 1, with ü"]["sim"] == 0
    # The first hello may precede the modem's answer; one with its identity must follow.
    assert server.hellos[-1]["device"]["imei"] == modem["imei"]
    sims = {s["slot"]: s for st in server.statuses for s in st.get("sims", [])}
    assert sims[0]["iccid"] == modem["sims"][0]["iccid"]


def test_check_config_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('server = "ftp://x"\njournal = "j.db"\n')
    out = subprocess.run(
        [console_script("simhive-agent"), "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "server: an http(s) URL" in out.stderr and "Traceback" not in out.stderr


async def test_kill_9_mid_batch_then_restart_sends_nothing_twice_and_loses_nothing(
    server: FakeAgentServer, tmp_path: Path
) -> None:
    token = server.add_device(400)
    # A lease the killed agent never journaled must come back quickly (protocol: it expires).
    server.lease_seconds = 5.0
    with run_emulator(
        modems=2, profile="generic", state_dir=tmp_path / "emu", extra_args=["--latency", "0.3"]
    ) as emu:
        sender, receiver = emu.state["modems"]
        to = receiver["sims"][0]["number"]
        cfg = tmp_path / "agent.toml"
        write_config(
            cfg, server.url, token, tmp_path / "journal.sqlite3", sender["link"], profile="generic"
        )
        ids = [await server.add(400, to, f"batch message {i:02d}") for i in range(20)]
        argv = [console_script("simhive-agent"), "run", "--config", str(cfg)]
        with running(argv, log=tmp_path / "agent1.log") as proc:
            await wait_for(
                lambda: len(emu.client.submitted(modem=sender["id"])) >= 5,
                limit=60,
                what="a few submits",
            )
            proc.kill()  # kill -9: no shutdown, most likely inside AT+CMGS
            proc.wait(10)

        # Final: delivered (7) or outcome-unknown (9). A status report that reached the modem
        # while the agent was dead is gone (+CDS is not stored), so the message sent just before
        # the kill may stay at 6 (sent): at most one.
        def settled() -> bool:
            st = [server.messages[i].status for i in ids]
            return all(s in (6, 7, 9) for s in st) and st.count(6) <= 1

        with running(argv, log=tmp_path / "agent2.log") as proc:
            try:
                await wait_for(settled, limit=120, what="every message final")
            except AssertionError:
                states = {i: server.messages[i].history for i in ids}
                raise AssertionError(
                    f"{states}\n{(tmp_path / 'agent2.log').read_text()[-3000:]}"
                ) from None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        submitted = emu.client.submitted(modem=sender["id"])
    texts = [s["text"] for s in submitted]
    assert len(texts) == len(set(texts)), "a message was submitted twice"
    delivered = [i for i in ids if server.messages[i].status == 7]
    unknown = [i for i in ids if server.messages[i].status == 9]
    sent_only = [i for i in ids if server.messages[i].status == 6]
    assert len(delivered) + len(unknown) + len(sent_only) == 20  # none lost
    assert len(sent_only) <= 1
    for i in sent_only:
        assert texts.count(server.messages[i].body) == 1
    assert len(unknown) <= 1  # only the one inside AT+CMGS at the kill can be unknown
    for i in unknown:
        assert "not resent" in server.messages[i].reason
    # Every delivered message was submitted exactly once.
    for i in delivered:
        assert texts.count(server.messages[i].body) == 1


def test_probe_prints_the_modem_as_json(tmp_path: Path) -> None:
    with run_emulator(modems=1, profile="quectel-ec25", state_dir=tmp_path / "emu") as emu:
        modem = emu.state["modems"][0]
        out = subprocess.run(
            [console_script("simhive-agent"), "probe", modem["link"]],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 0, out.stderr
    assert modem["imei"] in out.stdout
    assert isinstance(json.loads(out.stdout), dict)


def test_probe_of_a_missing_port_is_one_clear_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [console_script("simhive-agent"), "probe", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "no such port" in out.stderr and "Traceback" not in out.stderr


def test_unwritable_journal_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cfg = tmp_path / "agent.toml"
    write_config(cfg, "http://127.0.0.1:9", "s3cr3t-xyz", tmp_path / "file" / "j.db", "/dev/null")
    out = subprocess.run(
        [console_script("simhive-agent"), "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "cannot open journal" in out.stderr
    assert "Traceback" not in out.stderr and "s3cr3t-xyz" not in out.stderr
