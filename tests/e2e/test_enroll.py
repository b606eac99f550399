"""Device enrollment end to end: a device made through /api/v1, `simhive-agent enroll URL CODE`
run as its answer says, the written config (private) started as the agent, and an SMS on the air
from the emulated modem. The code works once."""

from __future__ import annotations

import shlex
import stat
import subprocess
from typing import Any

import pytest
import requests

from tests.e2e.conftest import GatewayFactory
from tests.support.proc import Proc
from tests.support.procs import console_script
from tests.support.stack import GatewayStack, wait_until

pytestmark = pytest.mark.integration


def v1(stack: GatewayStack, key: str, method: str, path: str, body: Any = None) -> Any:
    answer = requests.request(method, f"{stack.url}/api/v1{path}", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_enroll_writes_a_private_config_that_runs(gateway: GatewayFactory) -> None:
    stack = gateway(modems=1, agent_count=0)  # the agent comes from enrollment below
    key = str(stack.cli("key", "create", "--email", stack.email, "--name", "e2e",
                        "--scope", "admin")["key"])  # fmt: skip
    made = v1(stack, key, "POST", "/devices", {"name": "pi in the hall"})
    command = shlex.split(made["enrollment"]["command"])
    assert command[:2] == ["simhive-agent", "enroll"] and command[2] == stack.url
    modem = stack.emu_state["modems"][0]
    config = stack.root / "etc" / "agent.toml"
    extra = [
        "--config",
        str(config),
        "--port",
        modem["link"],
        "--dual-sim",
        modem["dual_sim"],
        "--profile",
        modem["profile"],
        "--journal",
        str(stack.root / "journal.sqlite3"),
    ]
    run = [console_script("simhive-agent"), *command[1:], *extra]
    done = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert made["token"] not in done.stdout + done.stderr  # never printed
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f'token = "{made["token"]}"' in config.read_text()
    checked = subprocess.run([console_script("simhive-agent"), "check-config", str(config)],
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0 and "pi in the hall" in checked.stdout, checked.stderr
    # the code works once: a second run is refused with one line and leaves the file alone
    before = config.read_text()
    again = subprocess.run(run, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 1 and "enroll refused" in again.stderr
    assert again.stderr.count("\n") == 1 and config.read_text() == before
    agent = Proc("agent", [console_script("simhive-agent"), "run", "--config", str(config)],
                 log=stack.root / "agent.log")  # fmt: skip
    stack.agents.append(agent)
    agent.start()
    sent = v1(
        stack,
        key,
        "POST",
        "/messages",
        {"to": ["+4917012345678"], "text": "enrolled and sending", "device_id": made["id"]},
    )
    sms_id = sent["messages"][0]["id"]
    try:
        wait_until(lambda: [r for r in stack.submitted() if r["text"] == "enrolled and sending"]
                   or None, 60, "the SMS on the air")  # fmt: skip
        stack.wait_status(sms_id, {6, 7})
    except AssertionError:
        raise AssertionError(stack.logs()) from None
    device = v1(stack, key, "GET", f"/devices/{made['id']}")
    assert device["connection"] == "online"
