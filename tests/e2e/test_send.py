"""addsms -> delivered, through the real server, agent and emulated dual-SIM modem.

The compat API is the only door: messages go in with addsms, the test watches getsmsstatus and
getalldevices, and the emulator's /submitted log says what went over the air and from which SIM.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration

LIFECYCLE = [1, 2, 3, 6, 7]
# Destinations outside the emulated set: the network delivers nowhere and reports "delivered"
# (the emulator's default --report-outcome), so no incoming SMS clutters these tests.
OUTSIDE = "+4917012345678"


class StatusWatcher:
    """Polls getsmsstatus as fast as the server answers and keeps every change it sees."""

    def __init__(self, stack: GatewayStack, sms_id: int) -> None:
        self.stack, self.sms_id = stack, sms_id
        self.seen: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            status = self.stack.status(self.sms_id)
            if not self.seen or self.seen[-1] != status:
                self.seen.append(status)
            if status in (7, 8, 9):
                return

    def join(self, timeout: float) -> list[int]:
        self._thread.join(timeout)
        self._stop.set()
        return self.seen


def is_ordered_subsequence(seen: list[int], order: list[int]) -> bool:
    it = iter(order)
    return all(any(s == o for o in it) for s in seen)


def parse_date(value: dict[str, Any]) -> datetime:
    assert value["timezone"] in ("UTC", "+00:00"), value
    return datetime.strptime(value["date"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)


def test_addsms_is_delivered_over_the_requested_sim(gateway: GatewayFactory) -> None:
    stack = gateway(modems=1, dual_sim="cdsds", emulator_args=["--report-delay", "0.3"],
                    device_settings=FAST_PACING)  # fmt: skip
    dev = stack.devices[0]
    # Wait for the agent's hello: the device has SIM info once the agent has seen the modem.
    stack.wait_agent_ready()

    first = stack.addsms(dev, OUTSIDE, "over SIM 1", sim=0)
    watcher = StatusWatcher(stack, first)
    assert stack.wait_status(first, {7}) == 7
    seen = watcher.join(10)
    second = stack.addsms(dev, OUTSIDE, "over SIM 2", sim=1)
    assert stack.wait_status(second, {7}) == 7

    # Every status the fast poller saw is in lifecycle order and the last one is 7; 2 and 3 last
    # only milliseconds with a long-polling agent, so they need not all be seen.
    assert seen[-1] == 7 and is_ordered_subsequence(seen, LIFECYCLE), seen
    # The server keeps no per-status history; what it does keep says the same: leased once
    # (a lease id, attempt 1), then the agent's "sent" event, then its "delivered" event.
    trail = stored_trail(stack, first)
    assert trail["lease_id"] and trail["attempt"] == 1, trail
    assert trail["created"] <= trail["sent_applied"] <= trail["delivered_applied"], trail

    parts = {p["text"]: p for p in stack.submitted()}
    assert parts["over SIM 1"]["slot"] == 0 and parts["over SIM 1"]["modem"] == dev.modem_id
    assert parts["over SIM 2"]["slot"] == 1 and parts["over SIM 2"]["modem"] == dev.modem_id
    assert parts["over SIM 1"]["from"] == dev.number(0)
    assert parts["over SIM 2"]["from"] == dev.number(1)
    assert all(p["to"] == OUTSIDE for p in parts.values())
    assert len(stack.submitted()) == 2  # each sent exactly once

    listed = stack.all_sms(device_id=dev.device_id)
    assert listed[str(first)]["sim"] == 0 and listed[str(second)]["sim"] == 1
    assert listed[str(first)]["senttime"] is not None


def stored_trail(stack: GatewayStack, sms_id: int) -> dict[str, Any]:
    """What the server's database holds about a message's way (read-only, after the fact)."""
    with contextlib.closing(sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)) as db:
        row = db.execute(
            "SELECT created, lease_id, attempt FROM messages WHERE id = ?", (sms_id,)
        ).fetchone()
        applied = dict(
            db.execute(
                "SELECT event_id, applied_at FROM applied_events WHERE sms_id = ?", (sms_id,)
            ).fetchall()
        )
    return {
        "created": row[0],
        "lease_id": row[1],
        "attempt": row[2],
        "sent_applied": applied.get(f"{sms_id}:sent"),
        "delivered_applied": applied.get(f"{sms_id}:delivered"),
    }


def siminfo(stack: GatewayStack, device_id: int) -> list[dict[str, Any]]:
    device = stack.api("getalldevices")["device"][str(device_id)]
    info: list[dict[str, Any]] = device["siminfo"]
    return info


def both_iccids(stack: GatewayStack, device_id: int) -> list[dict[str, Any]] | None:
    info = siminfo(stack, device_id)
    return info if len(info) == 2 and all(e["IccId"] for e in info) else None


# Seconds after the agent starts by which getalldevices lists both SIMs of a single-standby
# modem. It reads only its active SIM; the agent visits the other one right after connecting
# (a 0.3 s switch on the emulated SIM800C-DS), where the idle visit would come after 60 s.
BOTH_SIMS_WITHIN = 20


def test_getalldevices_shows_siminfo_and_a_fresh_lastseen(gateway: GatewayFactory) -> None:
    # The default sim_visit_seconds (60 s): both ICCIDs come from the agent's visit at connect.
    stack = gateway(modems=1, dual_sim="cdsds", agent_options={"status_interval_seconds": 5})
    dev = stack.devices[0]
    info = wait_until(
        lambda: both_iccids(stack, dev.device_id), BOTH_SIMS_WITHIN, "both SIMs' ICCIDs"
    )
    by_slot = {entry["Slot"]: entry for entry in info}
    assert set(by_slot) == {"0", "1"}
    for slot, emulated in enumerate(dev.modem["sims"]):
        entry = by_slot[str(slot)]
        # The compat contract: every siminfo value is a string (docs/compat-api.md, getalldevices).
        assert all(isinstance(v, str) for v in entry.values()), entry
        assert entry["IccId"] == emulated["iccid"]
        assert entry["Number"] == emulated["number"]
        assert entry["Roaming"] == "0"
        assert entry["CountryIso"] == "de"  # MCC 262
        assert entry["CarrierName"], entry

    device = stack.api("getalldevices")["device"][str(dev.device_id)]
    created, lastseen = parse_date(device["created"]), parse_date(device["lastseen"])
    assert lastseen > created
    assert abs((datetime.now(UTC) - lastseen).total_seconds()) < 60
    assert device["imei"] == dev.modem["imei"]

    status = stack.api("getdevicestatus", device_id=dev.device_id)
    assert status["online"] is True and status["diffseconds"] < 60

    # Roaming set on the emulated SIM reaches the server as "1" with the next status report.
    stack.emu.set_sim(dev.modem_id, 0, roaming=True)
    wait_until(
        lambda: {e["Slot"]: e for e in siminfo(stack, dev.device_id)}["0"]["Roaming"] == "1",
        60,
        "roaming on slot 0",
        interval=0.5,
    )


def test_long_poll_sends_within_a_second_of_addsms(gateway: GatewayFactory) -> None:
    """An idle agent is parked in a long poll; addsms wakes it (no 5-20 s polling interval)."""
    stack = gateway(modems=1, dual_sim="none", profile="generic")
    dev = stack.devices[0]
    stack.wait_agent_ready()
    time.sleep(2)  # let the agent settle into its long poll
    started = time.monotonic()
    stack.addsms(dev, OUTSIDE, "wake up")
    part = stack.emu.wait_submitted(1, timeout=30)[0]
    # Same CLOCK_MONOTONIC in both processes (docs/emulator.md). Not a speed claim (that is
    # bench/e2e_latency.py): the loose bound, under the peers' 5 s poll and far under the
    # server's 10 s delaybetweenrequest, only tells a woken long poll from interval polling.
    assert part["monotonic"] - started < 4.0


def test_both_sims_are_listed_within_seconds_of_a_start_and_of_a_replug(
    gateway: GatewayFactory,
) -> None:
    """All agent defaults (60 s visits, 300 s status interval): the visit at connect is reported
    at once, the first SIM is active again after it, and a replug brings another visit."""
    stack = gateway(modems=1, dual_sim="cdsds")
    started = time.monotonic()
    dev = stack.devices[0]
    wait_until(lambda: both_iccids(stack, dev.device_id), BOTH_SIMS_WITHIN, "both ICCIDs")
    print(f"both ICCIDs listed {time.monotonic() - started:.1f} s after the agent started")
    by_slot = {e["Slot"]: e for e in siminfo(stack, dev.device_id)}
    assert [by_slot[str(s)]["IccId"] for s in (0, 1)] == [e["iccid"] for e in dev.modem["sims"]]
    # Back on SIM 1 after a short stay on SIM 2 (10 s for what the network held for it).
    wait_until(lambda: stack.emu.modem(dev.modem_id)["live"]["active_slot"] == 0, 30, "SIM 1 again")

    # SIM 2 starts roaming while the modem is unplugged: only a visit can tell.
    stack.emu.unplug(dev.modem_id)
    stack.emu.set_sim(dev.modem_id, 1, roaming=True)
    stack.emu.replug(dev.modem_id)
    replugged = time.monotonic()
    wait_until(
        lambda: {e["Slot"]: e for e in siminfo(stack, dev.device_id)}["1"]["Roaming"] == "1",
        BOTH_SIMS_WITHIN,
        "SIM 2 roaming after the replug",
        interval=0.5,
    )
    print(f"SIM 2's new state listed {time.monotonic() - replugged:.1f} s after the replug")
