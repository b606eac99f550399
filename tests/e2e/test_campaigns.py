"""A campaign of 1,000 recipients across a pool, end to end: real server, emulator and agents.
Its statistics must match what the emulator saw: every recipient on the air once, and delivered,
not delivered and unknown (no report) as the emulated network's rules decided."""

from __future__ import annotations

import collections
from typing import Any

import pytest
import requests

from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration

TEXT = "Spring sale: 20% off"
FAILS, SILENT, DELIVERS = "+4917099", "+4917098", "+4917097"  # rules of the emulated network


def v1(stack: GatewayStack, key: str, method: str, path: str, body: Any = None) -> Any:
    answer = requests.request(method, f"{stack.url}/api/v1{path}", json=body, timeout=60,
                              headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_a_1000_recipient_campaign_matches_the_emulators_counts(gateway: GatewayFactory) -> None:
    stack = gateway(modems=4, dual_sim="ports", device_settings=FAST_PACING)
    key = str(stack.cli("key", "create", "--email", stack.email, "--name", "e2e",
                        "--scope", "admin")["key"])  # fmt: skip
    stack.emu.configure_network(rules=[{"pattern": FAILS + "*", "outcome": "failed"},
                                       {"pattern": SILENT + "*", "outcome": "none"}])  # fmt: skip
    v1(stack, key, "POST", "/pools", {"name": "promo", "strategy": "partial"})
    for device in stack.devices:
        for slot in (0, 1):
            v1(stack, key, "PUT", f"/pools/promo/sims/{device.device_id}/{slot}", {})
    numbers = ([f"{FAILS}{n:05d}" for n in range(100)] + [f"{SILENT}{n:05d}" for n in range(50)]
               + [f"{DELIVERS}{n:05d}" for n in range(850)])  # fmt: skip
    group = v1(stack, key, "POST", "/groups", {"name": "customers"})
    csv = "phone,name\n" + "".join(f"{n},c{i}\n" for i, n in enumerate(numbers[::2]))
    imported = v1(stack, key, "POST", f"/groups/{group['id']}/contacts/import", {"csv": csv})
    assert (imported["added"], imported["rejected"]) == (500, [])
    campaign = v1(stack, key, "POST", "/campaigns",
                  {"name": "spring", "groups": [group["id"]], "to": numbers[1::2],
                   "text": TEXT, "pool": "promo"})  # fmt: skip
    assert campaign["recipients"] == 1000

    def settled() -> dict[str, Any] | None:
        s: dict[str, Any] = v1(stack, key, "GET", f"/campaigns/{campaign['id']}/statistics")
        reported = s["delivered"] + s["not_delivered"]
        return s if s["state"] == "finished" and reported == 950 else None

    try:
        stats = wait_until(settled, 240, "the campaign to finish and its reports to come", 1.0)
    except AssertionError:
        raise AssertionError(stack.logs()) from None
    on_air = [r for r in stack.submitted() if r["text"] == TEXT]
    per_number = collections.Counter(r["to"] for r in on_air)
    assert sorted(per_number) == sorted(numbers) and set(per_number.values()) == {1}
    assert len({(r["modem"], r["slot"]) for r in on_air}) == 8  # across the whole pool
    reports = collections.Counter(
        "unknown" if r["report_status"] is None
        else "delivered" if r["report_status"] == 0 else "not_delivered"
        for r in on_air
    )  # fmt: skip
    assert stats["sent"] == len(on_air) == 1000
    assert (stats["delivered"], stats["not_delivered"], stats["unknown"]) == (
        reports["delivered"], reports["not_delivered"], reports["unknown"])  # fmt: skip
    assert reports == {"delivered": 850, "not_delivered": 100, "unknown": 50}
    assert (stats["queued"], stats["pending"], stats["failed"], stats["cancelled"]) == (0, 0, 0, 0)
    assert stats["delivery_rate"] == 0.85
    assert stats["duration_seconds"] > 0
