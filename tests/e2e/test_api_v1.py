"""A send through /api/v1 goes over the air: the real server, agent and emulated dual-SIM modem;
the message's status history, its part reports and the device profile come from what happened."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING

pytestmark = pytest.mark.integration

# Outside the emulated numbers: the network reports them delivered (the emulator's default).
TO = ["+4917012345678", "+4917012345679"]


def call(url: str, key: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{url}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_native_send_is_delivered_and_its_history_tells_how(gateway: GatewayFactory) -> None:
    stack = gateway(modems=1, dual_sim="cdsds", emulator_args=["--report-delay", "0.3"],
                    device_settings=FAST_PACING)  # fmt: skip
    dev = stack.devices[0]
    stack.wait_agent_ready()
    key = stack.cli("key", "create", "--email", stack.email, "--name", "e2e",
                    "--scope", "admin")["key"]  # fmt: skip
    sent = call(stack.url, key, "POST", "/messages", {"to": TO, "text": "native hello"})
    ids = [m["id"] for m in sent["messages"]]
    assert sent["accepted"] == 2 and all(ids)
    for sms_id in ids:  # one core: the compat API sees the same messages arrive
        assert stack.wait_status(sms_id, {7}) == 7
    air = [p for p in stack.submitted() if p["text"] == "native hello"]
    assert sorted(p["to"] for p in air) == TO  # each sent exactly once
    for sms_id in ids:
        got = call(stack.url, key, "GET", f"/messages/{sms_id}")
        names = [h["status_name"] for h in got["history"]]
        assert names == ["queued", "taken", "committed", "sent", "delivered"], names
        # Sent to the pool `all`: bound to a SIM when one asked, and the history says which.
        assert got["pool"] == "all" and got["device_id"] == dev.device_id
        assert {h["device_id"] for h in got["history"][1:]} == {dev.device_id}
        assert got["history"][0]["device_id"] is None
        on_air = next(p for p in air if p["to"] == got["to"])
        assert got["sim"] == on_air["slot"]
        [part] = got["parts_sent"]  # one part, with the reference the modem returned
        assert part["index"] == 0 and isinstance(part["reference"], int)
        assert got["sent_at"] is not None and got["delivered_at"] is not None
    profile = call(stack.url, key, "GET", f"/devices/{dev.device_id}")
    assert profile["connection"] == "online"
    assert sum(s["sent_today"] for s in profile["sims"]) == 2
    assert all(s["queued"] == 0 and s["operator"] for s in profile["sims"])
