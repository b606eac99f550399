"""Two ports presented as one Modem with two SIM slots (dual_sim="ports").

Some devices expose each SIM on its own AT port (a dual-modem board, or two sticks that the
operator treats as one device). Each port is a full AtModem with slot 0; this composite maps
port i to slot i, rewrites the slot of every event, and reports the worse of the two states.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

from .base import (
    EventHandler,
    ModemEvent,
    ModemIdentity,
    ModemState,
    SendError,
    SendOutcome,
    SendResult,
    SimInfo,
    StateChange,
)

if TYPE_CHECKING:
    from .atmodem import AtModem
    from .ussd import UssdReply

__all__ = ["DualPortModem"]

_RANK = {
    ModemState.READY: 0,
    ModemState.DEGRADED: 1,
    ModemState.CONNECTING: 2,
    ModemState.DISCONNECTED: 3,
}


class DualPortModem:
    def __init__(self, ports: list[AtModem]) -> None:
        if len(ports) != 2:
            raise ValueError("a dual-port modem has exactly two ports")
        self.ports = ports
        self._handler: EventHandler | None = None
        self._starting = False
        self.identity: ModemIdentity = ports[0].identity  # refreshed after start

    @property
    def slots(self) -> list[int]:
        return [0, 1]

    @property
    def state(self) -> ModemState:
        return max((p.state for p in self.ports), key=lambda s: _RANK[s])

    def slot_state(self, slot: int) -> tuple[ModemState, str]:
        """The state of one SIM's own port: one port down does not take the other SIM out of
        pool work (agent/simview.py)."""
        port = self.ports[slot]
        return port.state, port.state_reason

    @property
    def connection_epoch(self) -> int:
        """Changes whenever either port (re)connects (agent/modem/events.py)."""
        return sum(p.connection_epoch for p in self.ports)

    def _handler_for(self, slot: int) -> EventHandler:
        async def handle(event: ModemEvent) -> None:
            if self._handler is None:
                return
            if isinstance(event, StateChange):
                if self._starting:
                    return  # one combined state is reported once both ports started
                # One state for the device: the worse port decides; say which port changed.
                state = self.state
                reason = f"SIM {slot + 1} port: {event.state.value} ({event.reason})"
                await self._handler(StateChange(state, reason))
                return
            await self._handler(dataclasses.replace(event, slot=slot))

        return handle

    async def start(self, on_event: EventHandler) -> None:
        self._handler = on_event
        self._starting = True
        try:
            await asyncio.gather(*(p.start(self._handler_for(i)) for i, p in enumerate(self.ports)))
        finally:
            self._starting = False
        self.identity = self.ports[0].identity
        reasons = "; ".join(
            f"SIM {i + 1} port: {p.state.value} ({p.state_reason})"
            for i, p in enumerate(self.ports)
        )
        await on_event(StateChange(self.state, reasons))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.ports))

    async def sim_info(self) -> list[SimInfo]:
        infos = await asyncio.gather(*(p.sim_info() for p in self.ports))
        return [dataclasses.replace(info[0], slot=i) for i, info in enumerate(infos)]

    async def send(
        self, number: str, text: str, *, slot: int = 0, status_report: bool = True
    ) -> SendResult:
        if slot not in (0, 1):
            raise SendError(f"no SIM slot {slot}", outcome=SendOutcome.PERMANENT)
        return await self.ports[slot].send(number, text, slot=0, status_report=status_report)

    async def ussd(self, code: str, *, slot: int = 0, wait: float = 30.0) -> UssdReply:
        if slot not in (0, 1):
            raise SendError(f"no SIM slot {slot}", outcome=SendOutcome.PERMANENT)
        return await self.ports[slot].ussd(code, slot=0, wait=wait)

    def describe(self) -> dict[str, object]:
        return {"ports": [p.describe() for p in self.ports]}
