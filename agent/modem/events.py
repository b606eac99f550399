"""State, state changes and event hand-over shared by every Modem backend (AT, Gammu)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from simhive.agent.modem.base import (
    EventHandler,
    ModemEvent,
    ModemIdentity,
    ModemState,
    SendError,
    SendOutcome,
    StateChange,
)

log = logging.getLogger(__name__)


# A connect is the step from one of these to READY or DEGRADED (the modem answers again).
_DOWN = frozenset({ModemState.DISCONNECTED, ModemState.CONNECTING})


class EventSource:
    """Mixed into a backend; it sets `name`, `_state`, `_state_reason` and `_handler`."""

    # Bumped on every (re)connect: start, replug, re-initialisation. Whoever must act once per
    # connect (the dispatcher's visit to the other SIM) compares it with the value it last saw;
    # looking at `state` alone misses a disconnect and reconnect that both fall between looks.
    connection_epoch: int = 0

    if TYPE_CHECKING:  # provided by the backend

        @property
        def name(self) -> str: ...

        @property
        def slots(self) -> list[int]: ...

    identity: ModemIdentity
    _state: ModemState
    _state_reason: str
    _handler: EventHandler | None

    @property
    def state(self) -> ModemState:
        return self._state

    @property
    def state_reason(self) -> str:
        return self._state_reason

    def _require_slot(self, slot: int) -> None:
        """Raise SendError PERMANENT for a slot this modem does not have."""
        if slot not in self.slots:
            raise SendError(f"no SIM slot {slot} on {self.name}", outcome=SendOutcome.PERMANENT)

    def _require_connected(self) -> None:
        """Raise SendError RETRY while disconnected: the supervisor is reconnecting."""
        if self._state is ModemState.DISCONNECTED:
            raise SendError(
                f"{self.name} is disconnected ({self._state_reason})", outcome=SendOutcome.RETRY
            )

    def _describe_state(self) -> dict[str, object]:
        """The part of describe() (probe, diagnostics) every backend shares."""
        return {
            "state": self._state.value,
            "reason": self._state_reason,
            "manufacturer": self.identity.manufacturer,
            "model": self.identity.model,
            "firmware": self.identity.firmware,
            "imei": self.identity.imei,
        }

    def _mark_stopped(self) -> None:
        """The end of stop(): no event, the handler's owner is the one stopping us."""
        self._state, self._state_reason = ModemState.DISCONNECTED, "stopped"

    async def set_state(self, state: ModemState, reason: str = "") -> None:
        if state is self._state and reason == self._state_reason:
            return
        if self._state in _DOWN and state not in _DOWN:
            self.connection_epoch += 1
        self._state, self._state_reason = state, reason
        log.info("%s: %s (%s)", self.name, state.value, reason)
        # A failing handler must not stop supervision: the state is recorded either way.
        try:
            await self.emit(StateChange(state, reason))
        except Exception:
            log.exception("%s: event handler failed on a state change", self.name)

    async def emit(self, event: ModemEvent) -> None:
        """Hand an event over; raises what the handler raised (callers decide what it means)."""
        if self._handler is not None:
            await self._handler(event)
