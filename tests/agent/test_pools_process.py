"""Pool hand-back with `simhive-agent` as a real process against the modem emulator (ptys) and
the in-test protocol server: a modem unplugged mid-run hands its pool messages back and they
leave on another device's SIM, and `releasing` rows survive a kill -9."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from simhive.hardware.emulator.client import run_emulator
from tests.agent.fakes import wait_for
from tests.agent.fakeserver import FakeAgentServer
from tests.support.procs import console_script, running

pytestmark = pytest.mark.integration


def write_config(
    path: Path, server: str, journal: Path, devices: list[tuple[str, str, str]]
) -> None:
    """One agent, one [[device]] per (name, token, port)."""
    text = f'server = "{server}"\njournal = "{journal}"\nlog_level = "debug"\n'
    text += "retry_backoff_seconds = 0.5\n"
    for name, token, port in devices:
        text += f'\n[[device]]\nname = "{name}"\ntoken = "{token}"\nport = "{port}"\n'
        text += 'profile = "generic"\n'
    path.write_text(text)


def journal_states(journal: Path) -> dict[int, str]:
    with sqlite3.connect(journal) as conn:
        return {int(i): str(s) for i, s in conn.execute("SELECT id, state FROM outbox")}


async def test_an_unplugged_modem_hands_its_pool_messages_to_another_device(
    server: FakeAgentServer, tmp_path: Path
) -> None:
    ta, tb = server.add_device(500), server.add_device(501)
    server.pools["p"] = [(500, 0)]  # at first only modem A can take them
    with run_emulator(modems=2, profile="generic", state_dir=tmp_path / "emu") as emu:
        a, b = emu.state["modems"]
        emu.client.set_faults(a["id"], {"latency": 1.5})  # A submits slowly: a queue builds
        pool = [await server.add_pool_message("p", "+4915111111111", f"pool {i:02d}")
                for i in range(6)]  # fmt: skip
        pinned = await server.add(500, "+4915111111111", "pinned to A")
        cfg = tmp_path / "agent.toml"
        write_config(cfg, server.url, tmp_path / "journal.sqlite3",
                     [("A", ta, a["link"]), ("B", tb, b["link"])])  # fmt: skip
        log = tmp_path / "agent.log"
        argv = [console_script("simhive-agent"), "run", "--config", str(cfg)]
        with running(argv, log=log) as proc:
            try:
                await wait_for(lambda: server.messages[pinned].status == 3, limit=60,
                               what="A took the pool and the pinned messages")  # fmt: skip
                assert all(server.messages[i].device == 500 for i in pool)
                await wait_for(lambda: server.messages[pool[0]].status in (6, 7), limit=60,
                               what="A's first send")  # fmt: skip
                server.pools["p"].append((501, 0))  # B joins the pool
                await server.changed()
                emu.client.unplug(a["id"])
                await wait_for(lambda: bool(server.releases), limit=30, what="a hand-back")

                def settled() -> bool:
                    return all(server.messages[i].status in (6, 7, 9) for i in pool)

                await wait_for(settled, limit=60, what="every pool message final")
            except AssertionError:
                raise AssertionError(log.read_text()[-4000:]) from None
            released = sorted({i for r in server.releases for i in r["ids"]})
            assert released and pinned not in released
            assert "modem disconnected" in server.releases[0]["reason"]
            assert server.messages[pinned].status == 3  # a pinned message waits for its SIM
            emu.client.replug(a["id"])
            await wait_for(lambda: server.messages[pinned].status in (6, 7), limit=60,
                           what="the pinned message sent once A is back")  # fmt: skip
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        on_a = [s["text"] for s in emu.client.submitted(modem=a["id"])]
        on_b = [s["text"] for s in emu.client.submitted(modem=b["id"])]
    texts = on_a + on_b
    assert len(texts) == len(set(texts)), "a message was submitted twice"
    for i in released:  # handed back, then sent by B and only by B
        assert server.messages[i].device == 501 and server.messages[i].body in on_b
    unknown = [i for i in pool if server.messages[i].status == 9]
    assert len(unknown) <= 1  # the one inside AT+CMGS at the unplug: never resent
    assert all(i not in released for i in unknown)
    assert "pinned to A" in on_a


async def test_releasing_rows_survive_a_kill_9_and_go_back_at_the_next_start(
    server: FakeAgentServer, tmp_path: Path
) -> None:
    token = server.add_device(500)
    server.pools["p"] = [(500, 0)]
    journal = tmp_path / "journal.sqlite3"
    with run_emulator(modems=1, profile="generic", state_dir=tmp_path / "emu") as emu:
        (a,) = emu.state["modems"]
        emu.client.set_faults(a["id"], {"latency": 2.0})
        pool = [await server.add_pool_message("p", "+4915111111111", f"pool {i:02d}")
                for i in range(4)]  # fmt: skip
        cfg = tmp_path / "agent.toml"
        write_config(cfg, server.url, journal, [("A", token, a["link"])])
        argv = [console_script("simhive-agent"), "run", "--config", str(cfg)]
        server.fail["release"] = 10**6  # the server never answers a release in the first life
        with running(argv, log=tmp_path / "agent1.log") as proc:
            # pool[0] on the radio (committed by its claim), the rest leased behind it.
            await wait_for(lambda: server.messages[pool[0]].status == 3
                           and all(server.messages[i].status == 2 for i in pool[1:]),
                           limit=60, what="leased")  # fmt: skip
            emu.client.unplug(a["id"])
            await wait_for(lambda: server.calls.count("release") >= 2, limit=30,
                           what="release tries")  # fmt: skip
            proc.kill()  # kill -9
            proc.wait(10)
        marked = [i for i, s in journal_states(journal).items() if s == "releasing"]
        assert len(marked) >= 3 and set(marked) <= set(pool)
        server.fail["release"] = 0
        emu.client.replug(a["id"])
        log = tmp_path / "agent2.log"
        with running(argv, log=log) as proc:
            try:
                await wait_for(lambda: bool(server.releases), limit=30, what="released at start")
                # Back in the pool, A (ready again) takes them anew and sends each once.
                await wait_for(lambda: all(server.messages[i].status in (6, 7, 9) for i in pool),
                               limit=90, what="every pool message final")  # fmt: skip
            except AssertionError:
                raise AssertionError(log.read_text()[-4000:]) from None
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        texts = [s["text"] for s in emu.client.submitted(modem=a["id"])]
    assert sorted(server.releases[0]["ids"]) == sorted(marked)
    assert len(texts) == len(set(texts)), "a message was submitted twice"
    for i in marked:
        assert server.messages[i].status in (6, 7) and texts.count(server.messages[i].body) == 1
