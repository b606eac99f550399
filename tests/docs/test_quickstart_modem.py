"""docs/quickstart.md steps 3 and 4 as a user follows them, with an emulated modem in place of the
real one: the device is offline and its SMS stays New until an agent is attached; then the
page's own agent.toml (its port and server URL swapped for this run's) passes check-config, the
agent brings the device online and the SMS goes out."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.support.proc import Proc
from tests.support.procs import console_script
from tests.support.stack import GatewayStack, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "quickstart.md").read_text()

pytestmark = pytest.mark.integration


def _doc_config(server: str, port: str) -> str:
    [block] = re.findall(r"```toml\n(.*?)```", DOC, flags=re.DOTALL)
    doc = tomllib.loads(block)
    block = block.replace(f'"{doc["server"]}"', f'"{server}"')
    swapped: str = block.replace(f'"{doc["device"][0]["port"]}"', f'"{port}"')
    return swapped


def test_attaching_an_agent_as_the_quickstart_says(tmp_path: Path) -> None:
    # step 3: a server, an account and a device (GatewayStack does it with the same commands)
    stack = GatewayStack(tmp_path, modems=1, profile="quectel-ec25", dual_sim="none")
    stack.agent_count = 0
    stack.start()
    try:
        [device] = stack.devices
        status = stack.api("getdevicestatus", device_id=device.device_id)
        assert status["online"] is False  # "At this point the device exists but nothing drives it"
        sms_id = stack.addsms(device, to="+491601112233", body="hello from the quickstart")
        assert stack.status(sms_id) == 1

        # step 4: probe the port, write the token file and the page's agent.toml, check, run
        port = str(device.modem["link"])
        probe = subprocess.run(
            [console_script("simhive-agent"), "probe", port],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr
        probed = json.loads(probe.stdout)
        assert probed["sims"][0]["registered"] is True and "sim_error" not in probed
        work = tmp_path / "quickstart"
        work.mkdir()
        (work / "hall.token").write_text(device.token + "\n")  # cat > hall.token, Enter, Ctrl-D
        (work / "hall.token").chmod(0o600)
        (work / "agent.toml").write_text(_doc_config(stack.url, port))
        checked = subprocess.run(
            [console_script("simhive-agent"), "check-config", "agent.toml"],
            cwd=work, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        argv = [console_script("simhive-agent"), "run", "--config", str(work / "agent.toml")]
        agent = Proc("agent", argv, log=tmp_path / "agent.log")
        stack.agents.append(agent.start())

        stack.wait_status(sms_id, {6, 7})
        online = stack.api("getdevicestatus", device_id=device.device_id)["online"]
        assert online is True
        assert wait_until(lambda: stack.siminfo(device) or None, 30, "SIM info")
        assert (work / "agent-journal.sqlite3").exists()  # relative to the config file
    finally:
        stack.close()
