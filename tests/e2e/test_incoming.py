"""Incoming SMS: from the emulated network to status 5 on the server, and off the SIM only after.

The incoming path: +CMTI -> CMGR -> journal -> forward to the server -> only then CMGD. The test
holds the agent's link to the server (a stalled proxy, connections open) so the window between
"on the SIM" and "the server has it" lasts seconds instead of milliseconds, and checks the order
from the outside: the SIM's storage (emulator control API) against getallsms.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.stack import Device, GatewayStack, wait_until

pytestmark = pytest.mark.integration

SENDER = "+4930123456789"


def stored_texts(stack: GatewayStack, dev: Device, slot: int) -> list[str]:
    storage = stack.emu.storage(dev.modem_id)
    texts = []
    for entry in storage["slots"]:
        if entry["slot"] != slot:
            continue
        for memory in entry["memories"].values():
            texts += [m["text"] for m in memory["messages"] if m.get("kind") != "status_report"]
    return texts


def incoming(stack: GatewayStack, dev: Device) -> list[dict[str, Any]]:
    return list(stack.all_sms(device_id=dev.device_id, status=5).values())


def test_incoming_sms_reaches_the_server_before_it_leaves_the_sim(
    gateway: GatewayFactory,
) -> None:
    # Two ports (one pty per SIM), so both SIMs are registered at once: on a single-standby
    # modem the network holds SMS for the inactive SIM until the agent visits it.
    stack = gateway(modems=1, dual_sim="ports", with_proxy=True,
                    agent_options={"incoming_forward_timeout": 60})  # fmt: skip
    assert stack.proxy is not None
    dev = stack.devices[0]
    stack.wait_agent_ready()

    # 1. Normal path, to each SIM: it arrives as status 5 with the sender in sendto.
    for slot in (0, 1):
        stack.emu.send_sms(SENDER, dev.number(slot), f"hello SIM {slot + 1}")

    def both() -> list[dict[str, Any]] | None:
        got = incoming(stack, dev)
        return got if len(got) == 2 else None

    got = {m["body"]: m for m in wait_until(both, 60, "two incoming SMS")}
    for slot in (0, 1):
        sms = got[f"hello SIM {slot + 1}"]
        assert sms["status"] == 5 and sms["sendto"] == SENDER and sms["sim"] == slot
    wait_until(lambda: not stored_texts(stack, dev, 0) and not stored_texts(stack, dev, 1),
               30, "both deleted from the SIMs")  # fmt: skip

    # 2. The server is slow to answer: the SMS must stay on the SIM meanwhile.
    stack.proxy.hold()
    stack.emu.send_sms(SENDER, dev.number(0), "while the server is slow")
    wait_until(lambda: "while the server is slow" in stored_texts(stack, dev, 0), 30,
               "the SMS stored on SIM 1")  # fmt: skip
    time.sleep(3)  # the agent has read it by now and is waiting for the server's answer
    assert "while the server is slow" in stored_texts(stack, dev, 0)
    stack.proxy.release()

    # Storage first, then the server: if the SIM no longer has it, the server must already
    # have it (the server's set only grows, so this order cannot produce a false alarm).
    def settled() -> bool | None:
        on_sim = "while the server is slow" in stored_texts(stack, dev, 0)
        on_server = any(m["body"] == "while the server is slow" for m in incoming(stack, dev))
        assert on_sim or on_server, "deleted from the SIM before the server had it"
        return (on_server and not on_sim) or None

    wait_until(settled, 60, "stored on the server, then deleted from the SIM")
    assert len(incoming(stack, dev)) == 3  # no duplicate from the retried forward


def test_sms_between_two_emulated_modems(gateway: GatewayFactory) -> None:
    """One device sends to another device's SIM: delivered (7) there and incoming (5) here."""
    # A is single-standby (CDSDS switching), B has one port per SIM.
    stack = gateway(modems=2, dual_sim="cdsds,ports", emulator_args=["--report-delay", "0.3"])
    a, b = stack.devices
    stack.wait_agent_ready()
    sms_id = stack.addsms(a, b.number(1), "A to B, SIM 2", sim=0)
    stack.wait_status(sms_id, {7})
    got = wait_until(lambda: incoming(stack, b) or None, 60, "the SMS on device B")
    assert [(m["body"], m["sendto"], m["sim"]) for m in got] == [("A to B, SIM 2", a.number(0), 1)]
    assert incoming(stack, a) == []


def test_sms_for_a_full_sim_is_held_by_the_network_then_arrives_once(
    gateway: GatewayFactory,
) -> None:
    stack = gateway(modems=1, dual_sim="none", profile="generic")
    dev = stack.devices[0]
    stack.wait_agent_ready()
    stack.emu.set_faults(dev.modem_id, {"full_storage": True})
    stack.emu.send_sms(SENDER, dev.number(0), "waiting for room")
    time.sleep(3)
    assert incoming(stack, dev) == []  # the SMSC holds it: nowhere to store it
    stack.emu.set_faults(dev.modem_id, {"full_storage": False})
    got = wait_until(lambda: incoming(stack, dev) or None, 90, "the held SMS on the server")
    assert [(m["body"], m["sendto"]) for m in got] == [("waiting for room", SENDER)]
    time.sleep(2)
    assert len(incoming(stack, dev)) == 1
