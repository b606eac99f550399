"""`simhive-agent doctor` against the real gateway: the real server takes the device token of
`simhive-server device create` through the doctor's empty `report` call and sends a Date header
to compare clocks with; the port the running agent holds is named as the agent's, with the
fix to stop it; stopped, the modem checks run and all is well."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.procs import console_script

pytestmark = pytest.mark.integration


def doctor(config: Path, empty: Path) -> tuple[int, dict[str, Any]]:
    argv = [console_script("simhive-agent"), "doctor", "--config", str(config), "--json",
            "--dev-root", str(empty), "--sys-root", str(empty)]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return out.returncode, dict(json.loads(out.stdout))


def test_doctor_against_the_real_server_and_a_running_agent(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    stack = gateway(modems=1, profile="generic", dual_sim="none")
    stack.wait_agent_ready()
    config = stack.root / "agent.toml"
    code, report = doctor(config, tmp_path)
    by_check = {f["check"]: f for f in report["findings"]}
    assert by_check["server.token"]["level"] == "ok", report
    assert by_check["server.clock"]["level"] == "ok", report
    held = by_check["port.held"]
    assert code == 1 and held["level"] == "fail" and "simhive-agent" in held["message"]
    assert "sudo systemctl stop simhive-agent" in held["fix"]

    assert stack.agent is not None
    stack.agent.stop()
    code, report = doctor(config, tmp_path)
    assert code == 0, report
    checks = {f["check"] for f in report["findings"]}
    assert {"modem.at", "sim.pin", "network.registration", "sms.smsc", "server.token"} <= checks
