"""Device status events from the agent's `status` call (docs/agent-protocol.md), made safe to
store: the route has checked each is a JSON object; here every field is bounded and typed, and
an unreadable time becomes the time the server received it. Also the events the server itself
derives from the SIM info: a prepaid balance falling below the agent's threshold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from simhive.server.core.dates import to_us
from simhive.server.core.models import Balance, Sim
from simhive.server.store.agent_base import DeviceEvent

MAX_WORD = 40
MAX_REASON = 300


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def from_agent(event: dict[str, Any], now: int) -> DeviceEvent:
    at = now
    raw_at = event.get("at")
    if isinstance(raw_at, str):
        try:
            parsed = datetime.fromisoformat(raw_at)
            at = to_us(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
        except (ValueError, OverflowError):
            at = now
    slot = event.get("slot", event.get("sim"))
    return DeviceEvent(
        at=at,
        kind=_text(event.get("kind"), MAX_WORD) or "unknown",
        state=_text(event.get("state"), MAX_WORD),
        reason=_text(event.get("reason"), MAX_REASON),
        slot=slot
        if isinstance(slot, int) and not isinstance(slot, bool) and 0 <= slot < 16
        else None,
    )


def _amount(b: Balance) -> str:
    if b.amount is None:
        return "unknown"
    return f"{b.amount:g} {b.currency}" if b.currency else f"{b.amount:g}"


def with_balances(old: Sequence[Sim], new: Sequence[Sim]) -> list[Sim]:
    """The reported SIMs, each keeping its last known balance when the report carries none
    (the agent restarted and has not asked yet) and it is still the same SIM (ICCID)."""
    before = {s.slot: s for s in old}
    out: list[Sim] = []
    for sim in new:
        prev = before.get(sim.slot)
        if sim.balance is None and prev is not None and prev.iccid == sim.iccid:
            sim = replace(sim, balance=prev.balance)
        out.append(sim)
    return out


def balance_changes(old: Sequence[Sim], new: Sequence[Sim], now: int) -> list[DeviceEvent]:
    """An event when a SIM's balance drops below the agent's warning threshold (`low` flips
    to true), and one when it is back above it, so operators see it in `device events`."""
    before = {s.slot: s.balance for s in old if s.balance is not None}
    events: list[DeviceEvent] = []
    for sim in new:
        b = sim.balance
        if b is None:
            continue
        was_low = (prev := before.get(sim.slot)) is not None and prev.low
        if b.low and not was_low:
            reason = f"SIM {sim.slot + 1} prepaid balance {_amount(b)} is below the warning"
            reason += f" threshold: top it up ({b.text})"
        elif was_low and not b.low:
            reason = f"SIM {sim.slot + 1} prepaid balance {_amount(b)} ({b.text})"
        else:
            continue
        state = "low" if b.low else "ok"
        events.append(DeviceEvent(now, "balance", state, reason[:MAX_REASON], sim.slot))
    return events
