"""The `balance` of a `sims` entry on the server: stored with the SIM, kept while a report of
the same SIM has none, dropped with a new SIM, a device event when `low` flips, and bad values
refused with the error shape (docs/agent-protocol.md)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from simhive.server.core.models import Balance
from tests.server_agent.conftest import HELLO, Env


def with_balance(balance: Any, iccid: str | None = None) -> dict[str, Any]:
    body = copy.deepcopy(HELLO)
    sim = body["sims"][0]
    sim["balance"] = balance
    if iccid is not None:
        sim["iccid"] = iccid
    return {"sims": body["sims"]}


def low(amount: float, is_low: bool) -> dict[str, Any]:
    return {"text": f"Guthaben {amount} EUR", "amount": amount, "currency": "EUR",
            "low": is_low, "checked_at": "2026-11-22T04:30:00+00:00"}  # fmt: skip


async def balance_of(env: Env, slot: int = 0) -> Balance | None:
    sims = (await env.gw.store.sims_of([env.device_id]))[env.device_id]
    return next(s.balance for s in sims if s.slot == slot)


async def balance_events(env: Env) -> list[tuple[str, int | None]]:
    events = await env.gw.store.device_events(env.device_id)
    return [(e.state, e.slot) for e in events if e.kind == "balance"]


async def test_stored_kept_dropped_and_low_flips_are_events(env: Env) -> None:
    await env.agent("hello", {**HELLO, **with_balance(low(9.5, False))})
    assert await balance_of(env) == Balance("Guthaben 9.5 EUR", 9.5, "EUR", False,
                                            1_795_321_800_000_000)  # fmt: skip
    assert await balance_of(env, 1) is None
    assert await balance_events(env) == []  # not low: nothing to tell
    await env.agent("status", with_balance(low(3.5, True)))
    await env.agent("status", with_balance(low(3.5, True)))  # the same low balance again
    await env.agent("status", with_balance(None))  # no balance in this report: kept
    kept = await balance_of(env)
    assert kept is not None and kept.amount == 3.5 and kept.low
    assert await balance_events(env) == [("low", 0)]
    events = await env.gw.store.device_events(env.device_id)
    assert "3.5 EUR is below the warning threshold" in events[-1].reason
    await env.agent("status", with_balance(low(20, False)))
    assert await balance_events(env) == [("low", 0), ("ok", 0)]
    # Another SIM in the slot: its predecessor's balance is not carried over.
    await env.agent("status", with_balance(None, iccid="8949000000000000999"))
    assert await balance_of(env) is None
    # The compat API's siminfo keeps its vendor fields.
    data = await env.compat("getalldevices")
    assert set(data["device"][str(env.device_id)]["siminfo"][0]) == {
        "Slot", "IccId", "Number", "Roaming", "CountryIso", "CarrierName"
    }  # fmt: skip


@pytest.mark.parametrize(
    "balance",
    [5, "low", [], {}, {"text": 5}, {"text": "x", "amount": "5"}, {"text": "x", "amount": True},
     {"text": "x", "low": "yes"}, {"text": "x", "checked_at": "yesterday"},
     {"text": "x", "currency": 5}],
)  # fmt: skip
async def test_bad_balances_are_refused_with_the_error_shape(env: Env, balance: Any) -> None:
    answer = await env.agent("status", with_balance(balance), status=400)
    assert answer["error"]["code"] == "bad_request"
    assert "balance" in answer["error"]["message"]


async def test_a_non_finite_amount_is_refused(env: Env) -> None:
    r = await env.client.post(
        "/agent/v1/status",
        data=b'{"sims": [{"slot": 0, "balance": {"text": "x", "amount": 1e999}}]}',
        headers={"Authorization": f"Bearer {env.device_token}", "Content-Type": "application/json"},
    )
    assert r.status == 400 and "amount" in (await r.json())["error"]["message"]
