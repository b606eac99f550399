"""What each SIM of a device can take now: the `sims` list of a pull (docs/agent-protocol.md).

Per SIM slot:
- ready: the modem is up, the SIM present and registered, no PIN prompt, no failure-streak
  pause. On a single-standby dual-SIM modem (one radio, two SIMs) the inactive SIM cannot be
  registered; it counts as ready when it can be switched to (modem up, not paused, and what
  was last read from it when it was active shows no missing SIM or network), so its pinned
  messages still come; a non-ready SIM gets a short reason instead;
- room: how many more messages its local queue may take (`pull_max` per SIM, minus what the
  journal holds for it: leased, committed, releasing);
- pool_room: how many pool messages it can START within about a second (HORIZON_SECONDS),
  given its pacing gap, caps, how long a submit takes there, and what already waits on its
  radio. A paced SIM that must wait offers 0, an idle paced SIM 1, an idle unpaced SIM up to
  room. The inactive SIM of a single-standby modem offers at most 1, and only while the radio
  has nothing to do: a switch costs a re-registration.

Everything here is in memory (the journal keeps each SIM's load current as it writes, read
from disk only after an unusual write: agent/journal/loads.py), so it can be computed for every
pull and every change while a poll is parked (agent/pull.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from simhive.agent.dispatcher import Dispatcher
from simhive.agent.journal import Journal, SlotLoad, iso
from simhive.agent.modem.base import Modem, ModemState, SimInfo

HORIZON_SECONDS = 1.0  # pool_room counts the sends a SIM can start within this long
MAX_ROOM = 100  # the protocol's bound for room (and for a pull's max)


@dataclass(frozen=True)
class SlotView:
    slot: int
    ready: bool
    room: int = 0
    pool_room: int = 0
    reason: str = ""

    def wire(self) -> dict[str, Any]:
        if self.ready:
            return {"slot": self.slot, "ready": True, "room": self.room,
                    "pool_room": self.pool_room}  # fmt: skip
        return {"slot": self.slot, "ready": False, "reason": self.reason[:200]}

    def key(self) -> tuple[object, ...]:
        """What a parked poll depends on. A poll parks only when the server had nothing it
        could give, so more room of a kind that already had some changes nothing; a SIM
        gaining its first room of a kind, or losing it, or changing readiness, does."""
        return (self.slot, self.ready, self.reason, self.room > 0, self.pool_room > 0)


@dataclass(frozen=True)
class SimsView:
    slots: tuple[SlotView, ...]
    changes_at: float | None = None  # when time alone changes it (a pacing gap or pause ends)
    held: int = 0  # messages the journal holds for the device (leased, committed, releasing)

    def wire(self) -> list[dict[str, Any]]:
        return [s.wire() for s in self.slots]

    def key(self) -> tuple[tuple[object, ...], ...]:
        return tuple(s.key() for s in self.slots)

    def readiness(self) -> tuple[tuple[object, ...], ...]:
        return tuple((s.slot, s.ready, s.reason) for s in self.slots)

    @property
    def room(self) -> int:
        return sum(s.room for s in self.slots if s.ready)

    def get(self, slot: int) -> SlotView | None:
        return next((s for s in self.slots if s.slot == slot), None)


class SimReadiness:
    """Readiness and room of one device's SIMs, from the modem, dispatchers and journal."""

    def __init__(
        self,
        *,
        device: str,
        modem: Modem,
        journal: Journal,
        dispatchers: Sequence[Dispatcher],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device = device
        self.modem = modem
        self.journal = journal
        self._by_slot = {s: d for d in dispatchers for s in d.slots}
        self.slots = sorted(self._by_slot)
        self._clock = clock
        # Optional backend capability `slot_state(slot) -> (state, reason)`: the state of one
        # slot's own port (agent/modem/dualport.py). Looked up once: a runtime Protocol check
        # per look would cost more than the rest of the view.
        slot_state = getattr(modem, "slot_state", None)
        self._slot_state: Callable[[int], tuple[ModemState, str]] | None = (
            slot_state if callable(slot_state) else None
        )
        self._sims: dict[int, SimInfo] = {}  # what was last read from each SIM
        self._reason = ""  # the modem's last state-change reason

    def note_sims(self, sims: Sequence[SimInfo]) -> None:
        """SIM info just read from the modem (status, hello): kept for the inactive SIM."""
        for info in sims:
            self._sims[info.slot] = info

    def note_state(self, reason: str) -> None:
        self._reason = reason

    def readiness(self) -> dict[int, tuple[bool, str]]:
        """slot -> (ready, reason); memory only."""
        return {s: self._ready(s) for s in self.slots}

    def _state(self, slot: int) -> tuple[ModemState, str]:
        if self._slot_state is not None:
            return self._slot_state(slot)
        reason = getattr(self.modem, "state_reason", None)
        return self.modem.state, reason if isinstance(reason, str) and reason else self._reason

    def _ready(self, slot: int) -> tuple[bool, str]:
        state, why = self._state(slot)
        if state is ModemState.DISCONNECTED:
            return False, f"modem disconnected ({why})" if why else "modem disconnected"
        if state is ModemState.CONNECTING:
            return False, "modem connecting"
        disp = self._by_slot[slot]
        st = disp.state[slot]
        if st.paused_until > self._clock():
            return False, (
                f"paused after repeated failures until {iso(st.paused_until)}"
                + (f" (last: {st.last_error})" if st.last_error else "")
            )
        info = self._sims.get(slot)
        if len(disp.slots) > 1 and slot != disp.active_sim:
            # The inactive SIM of a single-standby modem: ready means "can be switched to".
            if info is not None and not info.present:
                return False, "no SIM card (when it was last active)"
            if info is not None and info.iccid and not info.registered:
                return False, "no network (when it was last active)"
            return True, ""
        if state is ModemState.DEGRADED:
            return False, why or "not registered to a network"
        if info is not None and not info.present:
            return False, "no SIM card"
        return True, ""

    async def view(self, pull_max: int) -> SimsView:
        loads = await self.journal.slot_loads(self.device)
        now = self._clock()
        changes: list[float] = []
        out: list[SlotView] = []
        for slot in self.slots:
            ready, why = self._ready(slot)
            load = loads.get(slot, SlotLoad())
            room = max(0, min(MAX_ROOM, pull_max - load.held))
            disp = self._by_slot[slot]
            st = disp.state[slot]
            if st.paused_until > now:
                changes.append(st.paused_until)
            if not ready:
                out.append(SlotView(slot, False, reason=why))
                continue
            # What already waits on this SIM's radio (both SIMs of a single-standby modem).
            queued = sum(loads.get(s, SlotLoad()).queued for s in disp.slots)
            queued += 1 if disp.in_flight is not None else 0
            wait = st.pacer.delay()
            if wait > HORIZON_SECONDS:
                pool = 0
                changes.append(now + wait - HORIZON_SECONDS)
            else:
                # Sends it can start within the horizon, counting those already waiting.
                gap = max(st.pacer.gap(), st.send_seconds)
                starts = None if gap <= 0 else 1 + int((HORIZON_SECONDS - wait) / gap)
                left = st.pacer.cap_left()
                if left is not None:
                    starts = left if starts is None else min(starts, left)
                pool = room if starts is None else max(0, min(room, starts - queued))
            if len(disp.slots) > 1 and slot != disp.active_sim:
                pool = min(pool, 1) if queued == 0 else 0
            out.append(SlotView(slot, True, room, pool))
        held = sum(load.held for load in loads.values())
        return SimsView(tuple(out), min(changes) if changes else None, held)
