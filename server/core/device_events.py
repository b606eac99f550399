"""Device status events from the agent's `status` call (docs/agent-protocol.md), made safe to
store: the route has checked each is a JSON object; here every field is bounded and typed, and
an unreadable time becomes the time the server received it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from simhive.server.core.dates import to_us
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
