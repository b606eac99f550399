"""Delivery reports on dual-SIM modems: every message sent over either SIM reaches status 7.

Issue 5 bug 3: with a SIM800C-DS (AT+CDSDS switching), reports for SIM 2 were often lost after
a SIM 1 batch. These tests alternate the requested SIM message by message, with a radio round
trip long enough that reports for one SIM arrive while the agent works on the other.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration

OUTSIDE = "+4917012345678"
COUNT = 20
# A submit takes 0.3 s and its report comes 2 s later: reports for one SIM arrive while the
# agent is busy on the other.
SLOW_RADIO = ["--latency", "0.3", "--report-delay", "2"]


def _statuses(stack: GatewayStack, ids: list[int]) -> dict[int, int]:
    return {i: stack.status(i) for i in ids}


def _send_alternating(stack: GatewayStack) -> dict[int, int]:
    dev = stack.devices[0]
    stack.wait_agent_ready()
    ids = [stack.addsms(dev, OUTSIDE, f"alt {i}", sim=i % 2) for i in range(COUNT)]

    def all_final() -> dict[int, int] | None:
        now = _statuses(stack, ids)
        return now if all(s in (7, 8, 9) for s in now.values()) else None

    try:
        final = wait_until(all_final, 150, "every message to reach a final status", interval=0.5)
    except AssertionError:
        final = _statuses(stack, ids)
    tally: dict[int, int] = {}
    for s in final.values():
        tally[s] = tally.get(s, 0) + 1
    # Each message went out once, over the SIM it asked for.
    submitted: list[dict[str, Any]] = stack.submitted()
    by_text = {p["text"]: p for p in submitted}
    assert len(submitted) == COUNT, submitted
    for i in range(COUNT):
        assert by_text[f"alt {i}"]["slot"] == i % 2, by_text[f"alt {i}"]
    assert tally == {7: COUNT}, (tally, final, stack.logs(8000))
    return tally


# (profile, dual-SIM style, agent options): AT+CDSDS and AT+QDSIM switch one radio between the
# SIMs, and the network holds the reports for the inactive SIM until the agent visits it (every
# sim_visit_seconds: 60 s by default, 3 s here, so the last reports do not wait a minute);
# "ports" has one port a SIM.
VISIT = {"sim_visit_seconds": 3}
STYLES = [
    ("sim800c-ds", "cdsds", VISIT),
    ("quectel-ec25", "qdsim", VISIT),
    ("generic", "ports", {}),
]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("profile", "style", "options"), STYLES, ids=[s[1] for s in STYLES])
def test_reports_for_both_sims_all_arrive(
    gateway: GatewayFactory, profile: str, style: str, options: dict[str, Any]
) -> None:
    stack = gateway(
        modems=1,
        profile=profile,
        dual_sim=style,
        emulator_args=SLOW_RADIO,
        device_settings=FAST_PACING,
        agent_options=options,
    )
    _send_alternating(stack)
