"""Several agent processes against one server, each with its own device tokens and journal."""

from __future__ import annotations

import collections
import time

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING

pytestmark = pytest.mark.integration

OUTSIDE = "+4917012345678"


def test_two_agents_each_send_for_their_own_devices_and_survive_each_other(
    gateway: GatewayFactory,
) -> None:
    stack = gateway(modems=4, dual_sim="none", profile="generic", agent_count=2,
                    device_settings=FAST_PACING)  # fmt: skip
    stack.wait_agent_ready()
    first, second = stack.agents
    ids = {stack.addsms(dev, OUTSIDE, f"via {dev.modem_id}"): dev for dev in stack.devices}
    for sms_id in ids:
        stack.wait_status(sms_id, {7})
    # Each message left through its own device's modem, whichever agent drives it.
    by_text = {p["text"]: p["modem"] for p in stack.submitted()}
    assert by_text == {f"via {dev.modem_id}": dev.modem_id for dev in stack.devices}

    # One agent dies: the other's devices carry on; the dead one's messages wait for it. The
    # server ends the dead agent's parked long polls when their connections close; an answer
    # it still managed to write into a dying connection is handed back by the restarted
    # agent's first pull (`holding`), so no wait for lease expiry is needed here.
    first.kill9()
    mine = {stack.addsms(dev, OUTSIDE, f"after kill {dev.modem_id}"): dev
            for dev in stack.devices}  # fmt: skip
    survivors = {i for i, dev in mine.items() if dev in stack.agent_devices(1)}
    orphans = set(mine) - survivors
    for sms_id in survivors:
        stack.wait_status(sms_id, {7})
    time.sleep(2)
    assert {stack.status(i) for i in orphans} <= {1, 2}, [stack.status(i) for i in orphans]
    stack.start_agent(0)
    for sms_id in orphans:
        stack.wait_status(sms_id, {7}, timeout=60)
    assert second.alive()
    # Every message went out once, from its own device's modem.
    submits = collections.Counter((p["text"], p["modem"]) for p in stack.submitted())
    expected = {(f"via {d.modem_id}", d.modem_id) for d in stack.devices}
    expected |= {(f"after kill {d.modem_id}", d.modem_id) for d in stack.devices}
    assert set(submits) == expected and set(submits.values()) == {1}, submits
