"""Prepaid balance from end to end: the emulator's scripted USSD answer, the agent's periodic
check (balance_ussd), the server storing it with the SIM info (`device show`) and recording a
device event when the balance falls below the agent's threshold and when it is back above."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from simhive.server.core.dates import to_us
from tests.support.stack import GatewayStack, wait_until

pytestmark = pytest.mark.integration

LOW = "Ihr Guthaben: 3,50 EUR"
TOPPED_UP = "Ihr Guthaben: 25,00 EUR"


class BalanceStack(GatewayStack):
    def write_agent_config(self, index: int = 0) -> Path:
        """SIM 1 is asked every second and warns below 5; SIM 2 is not asked."""
        path = super().write_agent_config(index)
        path.write_text(
            path.read_text() + 'balance_ussd = ["*100#", ""]\nbalance_warn_below = [5, 0]\n'
            "balance_interval_seconds = 1\n"
        )
        return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[BalanceStack]:
    gw = BalanceStack(tmp_path, emulator_args=["--ussd", f"m1:0:*100#={LOW}"])
    try:
        gw.start()
        yield gw
    except BaseException:
        print(gw.logs(6000))
        raise
    finally:
        gw.close()


def test_balance_is_stored_shown_and_low_is_an_event(stack: BalanceStack) -> None:
    device = stack.devices[0]
    dev = str(device.device_id)

    def stored(amount: float, after: int = 0) -> bool:
        """Polled in the database (read-only): cheaper than a CLI process per look."""
        with contextlib.closing(sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT balance FROM sims WHERE device_id = ? AND slot = 0", (device.device_id,)
            ).fetchone()
        found = json.loads(row[0]) if row and row[0] else None
        return found is not None and found["amount"] == amount and found["checked_at"] > after

    def sim1_balance(amount: float) -> dict[str, Any]:
        """What `device show` says about SIM 1's balance, once the database has `amount`."""
        wait_until(lambda: stored(amount), 60, f"SIM 1's balance {amount} at the server")
        balance: dict[str, Any] = stack.cli("device", "show", "--device-id", dev)["sims"][0][
            "balance"
        ]
        return balance

    def balance_events() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = stack.cli(  # type: ignore[assignment]  # a JSON list
            "device", "events", "--device-id", dev, "--limit", "1000"
        )
        return [e for e in events if e["kind"] == "balance"]

    def two_events() -> list[dict[str, Any]] | None:
        events = balance_events()
        return events if len(events) == 2 else None

    got = sim1_balance(3.5)
    assert got["text"] == LOW and got["currency"] == "EUR" and got["low"] is True
    assert got["checked_at"]
    shown = stack.cli("device", "show", "--device-id", dev)
    assert shown["sims"][1]["balance"] is None  # not asked
    (low,) = wait_until(balance_events, 30, "the low-balance event")
    assert (low["state"], low["slot"]) == ("low", 0)
    assert "3.5 EUR is below the warning threshold" in low["reason"] and LOW in low["reason"]
    # Later checks that find the same low amount add no event; the compat API's siminfo keeps
    # its vendor fields only.
    first = to_us(datetime.fromisoformat(got["checked_at"]))
    wait_until(lambda: stored(3.5, after=first), 30, "a recheck")
    assert [e["state"] for e in balance_events()] == ["low"]
    assert set(stack.siminfo(device)[0]) == {
        "Slot", "IccId", "Number", "Roaming", "CountryIso", "CarrierName"
    }  # fmt: skip

    # Topped up: the next check reports it, and the operator sees it is fine again.
    stack.emu.set_sim("m1", 0, ussd={"*100#": TOPPED_UP})
    got = sim1_balance(25.0)
    assert got["low"] is False and got["text"] == TOPPED_UP
    events = wait_until(two_events, 30, "the balance-ok event")
    assert [(e["state"], e["slot"]) for e in events] == [("low", 0), ("ok", 0)]
    assert "25 EUR" in events[1]["reason"]
