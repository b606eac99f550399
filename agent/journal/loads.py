"""Each SIM's load (what the journal holds for it, not started yet), kept in memory.

The pull loop asks for it at every pull and at every change of a parked poll's SIM view (agent/
simview.py): about two journal reads per SMS at 64 modems, each an indexed GROUP BY. Here it is
read once and then kept current by the writes themselves, on the event loop right after their
group commit (Store.write_nowait's `after`), before anything else runs on the loop:

- a write that moves rows into or out of the held states (`leased`, `committed`, `releasing`)
  on the hot path says by how much (a pulled message: +1; the `dispatching` mark: -1);
- a write that cannot change them says so (`unchanged`: a sent outcome, reports, events, inbox);
- any other write forgets what is kept (the default: a write nobody classified costs a read
  later, never a wrong load), and the next look reads the journal again.

A read is kept only when no write is queued or committing (`Store.idle`): then it reflects every
write whose change has been applied here, so none is counted twice. Between a group commit and
its `after` the loads lag the journal by that commit; they are never ahead of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SlotLoad:
    held: int = 0  # leased + committed + releasing: what counts against the SIM's pull room
    queued: int = 0  # leased + committed: waiting to be sent on it


def unchanged(_result: Any) -> None:
    """`after` of a write that leaves every SIM's load as it was."""


class SlotLoads:
    """device -> slot -> SlotLoad, for the devices whose loads are known."""

    def __init__(self) -> None:
        self._known: dict[str, dict[int, SlotLoad]] = {}
        self.reads_saved = 0  # looks answered from memory (counter for tests and benchmarks)

    def get(self, device: str) -> dict[int, SlotLoad] | None:
        loads = self._known.get(device)
        if loads is not None:
            self.reads_saved += 1
        return loads

    def keep(self, device: str, loads: dict[int, SlotLoad]) -> None:
        self._known[device] = loads

    def add(self, device: str, slot: int, held: int, queued: int) -> None:
        """Rows of `slot` entered (+) or left (-) the held and queued states."""
        loads = self._known.get(device)
        if loads is None:
            return  # not known: the next look reads the journal
        was = loads.get(slot, SlotLoad())
        now = SlotLoad(was.held + held, was.queued + queued)
        if now.held < 0 or now.queued < 0:  # cannot happen; a bug must not become a bad room
            del self._known[device]
            return
        changed = dict(loads)  # a caller may still hold the old mapping
        if now.held or now.queued:
            changed[slot] = now
        else:
            changed.pop(slot, None)
        self._known[device] = changed

    def forget(self, device: str | None = None) -> None:
        """Loads of `device` (None: of every device) may have changed in ways not counted."""
        if device is None:
            self._known.clear()
        else:
            self._known.pop(device, None)

    def forget_after(self, device: str) -> Callable[[Any], None]:
        return lambda _result: self.forget(device)
