"""Shared helpers for the Gammu backend tests: an event recorder and Gammu dummy-driver folders."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from simhive.agent.modem.base import ModemEvent, ModemState, StateChange

E = TypeVar("E")

# Gammu's dummy driver keeps its whole phone in one directory.
DUMMY_DIRS = ["sms/1", "sms/2", "sms/3", "sms/4", "sms/5", "pbk", "calendar", "todo", "note"]
DUMMY_DIRS += ["fs", "alarm"]


def make_dummy_phone(root: Path) -> Path:
    for sub in DUMMY_DIRS:
        os.makedirs(root / sub, exist_ok=True)
    return root


@pytest.fixture
def dummy_phone(tmp_path: Path) -> Path:
    return make_dummy_phone(tmp_path / "phone")


class Recorder:
    """An EventHandler that keeps every event; `fail` makes it raise for chosen events."""

    def __init__(self) -> None:
        self.events: list[ModemEvent] = []
        self.fail: Callable[[ModemEvent], bool] = lambda _e: False
        self.calls = 0
        self.refused: list[ModemEvent] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: ModemEvent) -> None:
        self.calls += 1
        if self.fail(event):
            self.refused.append(event)
            raise RuntimeError("handler refused (test)")
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def since(self, mark: int, kind: type[E]) -> list[E]:
        """Events of `kind` recorded after `mark` (a len(events) taken earlier)."""
        return [e for e in self.events[mark:] if isinstance(e, kind)]

    def states(self) -> list[ModemState]:
        return [e.state for e in self.of(StateChange)]

    async def wait(self, probe: Callable[[], E | None], within: float = 30.0) -> E:
        """Wait until probe() gives something truthy (re-checked after every event)."""
        async with asyncio.timeout(within):
            while True:
                value = probe()
                if value:
                    return value
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.2)
