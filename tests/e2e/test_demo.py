"""`simhive-server demo` as a user runs it: the banner docs/quickstart.md shows, paste the printed
curls, see status 7, both SIMs of each device in getalldevices, stop it; and what a user sees when
the port is taken or another demo runs on the same state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest

from tests.support.proc import Proc
from tests.support.procs import ROOT, console_script, free_port
from tests.support.stack import wait_until

pytestmark = pytest.mark.integration


def children_of(pid: int) -> list[int]:
    """Every process whose parent is pid (from /proc, no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses; fields resume after the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# What docs/quickstart.md's banner uses for the parts that differ per run.
DOC_URL = "http://127.0.0.1:8080"
DOC_STATE = "/home/pi/simhive/demo-state"


def quickstart_banner() -> list[str]:
    """The demo banner as docs/quickstart.md shows it (its first ```text block)."""
    text = (ROOT / "docs" / "quickstart.md").read_text()
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    return block.rstrip("\n").splitlines()


def printed_banner(output: str, state: Path, port: int, token: str, doc_token: str) -> list[str]:
    """The banner the demo printed, with this run's URL, state path and token put as the docs
    have them."""
    lines = output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("simhive demo gateway:"))
    last = next(i for i, line in enumerate(lines) if "Stop with Ctrl-C" in line)
    banner = "\n".join(lines[first : last + 1])
    banner = banner.replace(str(state.resolve()), DOC_STATE)
    banner = banner.replace(f"http://127.0.0.1:{port}", DOC_URL).replace(token, doc_token)
    return banner.splitlines()


def compat(info: dict[str, Any], method: str, **params: object) -> dict[str, Any]:
    query = urlencode({"token": info["account"]["token"], **params})
    with urlopen(f"{info['server_url']}/getdata/{method}?{query}", timeout=30) as answer:
        data: dict[str, Any] = json.loads(answer.read())
        return data


def test_demo_sends_with_the_printed_curls_and_stops_all_children(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    port = free_port()
    demo = Proc("demo", [console_script("simhive-server"), "demo", "--state", str(state),
                         "--port", str(port)], log=tmp_path / "demo.log")  # fmt: skip
    demo.start()
    try:
        wait_until(lambda: "Stop with Ctrl-C" in demo.tail(20000), 60, "the demo banner")
        kids = children_of(demo.pid)
        assert len(kids) == 3, kids  # server, emulator, agent

        info = json.loads((state / "demo.json").read_text())
        assert info["server_url"] == f"http://127.0.0.1:{port}"
        assert len(info["devices"]) == 2
        for device in info["devices"]:
            assert [s["slot"] for s in device["sims"]] == [0, 1]
            assert all(s["number"].startswith("+") for s in device["sims"])
        assert (state / "demo.json").stat().st_mode & 0o077 == 0  # tokens inside

        # docs/quickstart.md shows this banner line for line (only URL, path and token differ).
        doc = quickstart_banner()
        doc_token = next(line for line in doc if line.startswith("  token ")).split()[1]
        token = info["account"]["token"]
        assert printed_banner(demo.tail(20000), state, port, token, doc_token) == doc

        lines = [line.strip() for line in demo.tail(20000).splitlines()
                 if line.strip().startswith(("SMS_ID=", "curl "))]  # fmt: skip
        send, show = lines
        sent = subprocess.run(["bash", "-c", send], capture_output=True, text=True, timeout=60)
        sms_id = sent.stdout.strip().removeprefix("sms_id=")
        assert sms_id.isdigit(), sent

        def delivered() -> dict[str, object] | None:
            out = subprocess.run(["bash", "-c", show], capture_output=True, text=True,
                                 timeout=60, env={**os.environ, "SMS_ID": sms_id})  # fmt: skip
            answer: dict[str, object] = json.loads(out.stdout)
            return answer if answer.get("status") == 7 else None

        # The banner says "a second later"; 20 s leaves room for a loaded CI box, not for an SMS
        # held by the network for an inactive SIM until the agent's next visit (60 s).
        answer = wait_until(delivered, 20, "status 7 from the printed status curl", interval=0.5)
        assert answer["status_description"] == "Delivered"

        # getalldevices lists both SIMs of each device (ICCID, the number demo.json names,
        # carrier, country), and a lastseen.
        def both_sims() -> dict[str, Any] | None:
            listed: dict[str, Any] = compat(info, "getalldevices")["device"]
            for device in info["devices"]:
                row = listed[str(device["device_id"])]
                sims = {s["Slot"]: s for s in row["siminfo"]}
                for sim in device["sims"]:
                    got = sims.get(str(sim["slot"]), {})
                    if not (got.get("Number") == sim["number"] and got.get("IccId")):
                        return None
                    assert got["CarrierName"] and got["CountryIso"] == "de", got
                assert row["lastseen"], row
            return listed

        wait_until(both_sims, 20, "both SIMs of both devices in getalldevices", interval=0.5)

        # The SMS went to the other device's SIM: it arrives there as incoming (status 5).
        receiver = info["devices"][1]
        to = receiver["sims"][0]["number"]
        api = info["server_url"] + "/getdata/getallsms"
        token = info["account"]["token"]

        def received() -> bool:
            out = subprocess.run(["curl", "-s", api, "-d", f"token={token}", "-d", "status=5",
                                  "-d", f"device_id={receiver['device_id']}"],
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
            smss = json.loads(out.stdout)["smss"]
            return any(m["body"] == "Hello from simhive" and m["sim"] == 0 for m in smss.values())

        wait_until(received, 20, f"the SMS received on {to}", interval=0.5)

        # A second demo on the same port, or on the same state: one line saying why, exit 1,
        # and nothing started (no banner, the running demo untouched).
        other = [console_script("simhive-server"), "demo", "--port"]
        for argv, says in [
            (other + [str(port), "--state", str(tmp_path / "other")], "already in use"),
            (other + [str(free_port()), "--state", str(state)], "another demo is running"),
        ]:
            run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            assert run.returncode == 1, run
            assert says in run.stderr and len(run.stderr.splitlines()) == 1, run.stderr
            assert "Traceback" not in run.stderr + run.stdout and not run.stdout, run
        assert sorted(children_of(demo.pid)) == sorted(kids)
        assert compat(info, "getalldevices")["error"] == 0

        assert demo.popen is not None
        demo.popen.send_signal(signal.SIGTERM)
        assert demo.popen.wait(60) == 0
        deadline = time.monotonic() + 30
        while any(alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [k for k in kids if alive(k)], "a demo child outlived the demo"
    finally:
        demo.stop()
