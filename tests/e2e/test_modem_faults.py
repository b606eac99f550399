"""Modem and network faults injected in the emulator: the right final status, and the queue moves.

Statuses are the compat ones (docs/compat-api.md): 7 delivered, 8 not delivered
(a failed status report), 9 generic send failure, 10 no service.
"""

from __future__ import annotations

import collections
import subprocess
import time
from typing import Any

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.procs import console_script
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration

GOOD = "+4917012345678"
FINAL = {7, 8, 9, 10, 11, 12, 100, 101}
# Retries come fast in these tests; the policy (attempt count, per-code kind) is the agent's.
AGENT = {"retry_backoff_seconds": 0.5, "max_attempts": 3}


def fast_stack(gateway: GatewayFactory, **kwargs: Any) -> GatewayStack:
    stack = gateway(modems=1, dual_sim="none", profile="generic", agent_options=AGENT,
                    device_settings=FAST_PACING, **kwargs)  # fmt: skip
    stack.wait_agent_ready()
    return stack


def finals(stack: GatewayStack, ids: list[int], timeout: float = 60) -> list[int]:
    def probe() -> list[int] | None:
        statuses = [stack.status(i) for i in ids]
        return statuses if all(s in FINAL for s in statuses) else None

    try:
        return wait_until(probe, timeout, "final statuses", interval=0.3)
    except AssertionError:
        raise AssertionError(f"{[stack.status(i) for i in ids]}\n{stack.logs()}") from None


def test_permanent_error_fails_that_message_and_the_queue_moves_on(
    gateway: GatewayFactory,
) -> None:
    stack = fast_stack(gateway)
    dev = stack.devices[0]
    # +CMS ERROR: 30 (unknown subscriber) for one destination only: a bad number.
    stack.emu.set_faults(dev.modem_id, {"cms_error": {"code": 30, "number_pattern": "+4930*"}})
    bad, good = "+493012345678", GOOD
    ids = [stack.addsms(dev, bad if i % 3 == 0 else good, f"mixed {i}") for i in range(9)]
    statuses = finals(stack, ids)
    expected = [9 if i % 3 == 0 else 7 for i in range(9)]
    assert statuses == expected
    sent = collections.Counter(p["to"] for p in stack.submitted())
    assert sent == {good: 6}  # failed submits never reached the network


def test_transient_errors_are_retried_then_delivered_once(gateway: GatewayFactory) -> None:
    stack = fast_stack(gateway)
    dev = stack.devices[0]
    # +CMS ERROR: 42 (congestion) for the next two submits, then the network takes them.
    stack.emu.set_faults(dev.modem_id, {"cms_error": {"code": 42, "count": 2}})
    sms_id = stack.addsms(dev, GOOD, "after congestion")
    assert finals(stack, [sms_id]) == [7]
    assert [p["text"] for p in stack.submitted()] == ["after congestion"]


def test_retries_exhausted_on_a_transient_error_give_a_final_failure(
    gateway: GatewayFactory,
) -> None:
    stack = fast_stack(gateway)
    dev = stack.devices[0]
    stack.emu.set_faults(dev.modem_id, {"cms_error": {"code": 41, "count": 3}})
    failing = stack.addsms(dev, GOOD, "three strikes")
    assert finals(stack, [failing]) == [9]
    after = stack.addsms(dev, GOOD, "next in line")
    assert finals(stack, [after]) == [7]


def test_no_network_holds_the_sims_messages_with_the_reason_until_it_is_back(
    gateway: GatewayFactory,
) -> None:
    stack = fast_stack(gateway)
    dev = stack.devices[0]
    key = (dev.device_id, 0)
    # First ready as the server sees it: before the agent's first report the SIM is "not ready"
    # (connecting), and a message added then could be taken once the modem registers, just
    # before the fault below reaches the agent.
    wait_until(lambda: stack.sim_ready().get(key, (False, ""))[0], 30, "SIM ready")
    stack.emu.set_faults(dev.modem_id, {"no_network": True})
    # Once the agent has told the server the SIM is not ready (docs/routing.md), a message
    # pinned to it waits there, showing why, instead of being tried and failed as 10.
    wait_until(lambda: not stack.sim_ready().get(key, (True, ""))[0], 30, "SIM not ready")
    during = stack.addsms(dev, GOOD, "while unregistered")

    def waiting() -> str | None:
        answer = stack.api("getsmsstatus", sms_id=during)
        reason = str(answer.get("waiting", ""))
        return reason if answer["status"] == 1 and "not ready" in reason else None

    assert "not ready" in wait_until(waiting, 30, "the message to wait with a reason")
    assert stack.submitted() == []
    stack.emu.set_faults(dev.modem_id, {"no_network": False})
    after = stack.addsms(dev, GOOD, "network is back")
    assert finals(stack, [during, after]) == [7, 7]
    assert sorted(p["text"] for p in stack.submitted()) == ["network is back", "while unregistered"]


def test_unplugged_modem_keeps_its_messages_until_replugged(gateway: GatewayFactory) -> None:
    stack = fast_stack(gateway)
    dev = stack.devices[0]
    stack.emu.unplug(dev.modem_id)
    ids = [stack.addsms(dev, GOOD, f"unplugged {i}") for i in range(3)]
    time.sleep(5)
    # Committed to the agent (or still waiting on the server), but nothing failed or was sent.
    assert all(stack.status(i) in (1, 2, 3) for i in ids), [stack.status(i) for i in ids]
    assert stack.submitted() == []
    stack.emu.replug(dev.modem_id)
    assert finals(stack, ids) == [7, 7, 7]
    assert sorted(p["text"] for p in stack.submitted()) == [f"unplugged {i}" for i in range(3)]

    # The agent told the server about the unplug (device status events).
    out = subprocess.run(
        [console_script("simhive-server"), "device", "events", "--db", str(stack.db),
         "--device-id", str(dev.device_id)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "disconnected" in out.stdout, out.stdout


def test_failed_status_report_gives_not_delivered(gateway: GatewayFactory) -> None:
    stack = fast_stack(gateway)
    dev = stack.devices[0]
    stack.emu.configure_network(rules=[{"pattern": "+1*", "outcome": "failed"}])
    ids = [stack.addsms(dev, "+12025550123", "to a dead phone"), stack.addsms(dev, GOOD, "ok")]
    assert finals(stack, ids) == [8, 7]
