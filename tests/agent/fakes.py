"""A fake Modem at the true edge: it implements agent/modem/base.py's Modem protocol and
stands in for the radio. Tests script its answers per number; it records every submit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simhive.agent.journal import Journal
from simhive.agent.modem.base import (
    DeliveryReport,
    EventHandler,
    IncomingSms,
    ModemEvent,
    ModemIdentity,
    ModemState,
    SendError,
    SendResult,
    SimInfo,
)


@dataclass
class Submit:
    number: str
    text: str
    slot: int
    references: list[int] = field(default_factory=list)


class FakeModem:
    def __init__(self, slots: list[int] | None = None, *, part_len: int = 160) -> None:
        self.identity = ModemIdentity(
            manufacturer="FakeCo", model="F-1", firmware="1.0", imei="490154203237518"
        )
        self._slots = slots or [0]
        self._state = ModemState.CONNECTING
        self.connection_epoch = 0  # bumped on every (re)connect, as the backends do
        self.part_len = part_len
        self.handler: EventHandler | None = None
        self.submits: list[Submit] = []  # every call to send(), in order
        self.errors: dict[str, list[SendError]] = {}  # number -> errors to raise, in order
        self.fail_all: Callable[[], SendError] | None = None
        self.gate: asyncio.Event | None = None  # when set, send() waits for it
        self.in_send = asyncio.Event()
        self.next_mr = 0
        self.deleted: list[str] = []  # keys of incoming SMS whose handler returned
        self.start_error: Exception | None = None
        self.stopped = False

    @property
    def slots(self) -> list[int]:
        return list(self._slots)

    @property
    def state(self) -> ModemState:
        return self._state

    def set_state(self, state: ModemState) -> None:
        # Like the backends (agent/modem/events.py): every step from down to up is a connect.
        down = (ModemState.DISCONNECTED, ModemState.CONNECTING)
        if self._state in down and state not in down:
            self.connection_epoch += 1
        self._state = state

    async def start(self, on_event: EventHandler) -> None:
        if self.start_error is not None:
            raise self.start_error
        self.handler = on_event
        self.set_state(ModemState.READY)

    async def stop(self) -> None:
        self.stopped = True
        self._state = ModemState.DISCONNECTED

    async def sim_info(self) -> list[SimInfo]:
        return [
            SimInfo(
                slot=s,
                iccid=f"894900000000000000{s}",
                imsi=f"26201000000000{s}",
                number=None if s else "+4915700000000",
                operator="Fake Net",
                operator_code="26201",
                country_iso="de",
                registered=True,
                signal_dbm=-71,
            )
            for s in self._slots
        ]

    async def send(
        self, number: str, text: str, *, slot: int = 0, status_report: bool = True
    ) -> SendResult:
        sub = Submit(number, text, slot)
        self.submits.append(sub)
        self.in_send.set()
        if self.gate is not None:
            await self.gate.wait()
        queued = self.errors.get(number)
        if queued:
            raise queued.pop(0)
        if self.fail_all is not None:
            raise self.fail_all()
        parts = max(1, -(-len(text) // self.part_len))
        for _ in range(parts):
            sub.references.append(self.next_mr)
            self.next_mr = (self.next_mr + 1) % 256
        return SendResult(
            references=list(sub.references), encoding="gsm7", sent_at=datetime.now(UTC)
        )

    # -- driving events into the agent --------------------------------------------------------

    async def emit(self, event: ModemEvent) -> None:
        assert self.handler is not None, "modem not started"
        await self.handler(event)
        if isinstance(event, IncomingSms):
            self.deleted.append(event.key)  # the backend deletes only after the handler returned

    async def report(self, slot: int, reference: int, recipient: str, status: int = 0) -> None:
        now = datetime.now(UTC)
        await self.emit(
            DeliveryReport(
                slot=slot,
                reference=reference,
                recipient=recipient,
                status=status,
                sc_timestamp=now,
                discharge_time=now,
            )
        )

    @property
    def sent_numbers(self) -> list[str]:
        return [s.number for s in self.submits]


async def wait_for(cond: Callable[[], bool], limit: float = 30.0, what: str = "condition") -> None:
    """Poll a condition (generous timeout: CI machines are slow), never a fixed sleep."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_for_state(journal: Journal, device: str, msg_id: int, state: str) -> None:
    """Poll the journal until the message is in `state` (at most 15 s)."""
    for _ in range(1500):
        if await journal.message_state(device, msg_id) == state:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"message {msg_id} never became {state} in the journal")
