"""'New work' wake-ups for long-polling agents.

The core calls notify(device_id) after storing messages for that device (also when the store
call was cancelled or failed: a spare wake-up is cheap, a missed one costs a whole poll); an agent's
pull handler waits on wait(device_id, timeout) and answers within milliseconds instead of at its
next poll. One asyncio.Event per device that has polled, kept for the life of the server.

Several servers on one database: the store sets `relay`, which carries each notify to the other
servers, and calls `wake` for the wake-ups they send (server/store/pg_cluster.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class WorkNotifier:
    def __init__(self) -> None:
        self._events: dict[int, asyncio.Event] = {}
        self._waiters: dict[int, int] = {}
        self.closed = False
        self.relay: Callable[[int], None] | None = None

    def close(self) -> None:
        """Wake every waiter for good (server shutdown): long polls end instead of holding the
        shutdown for up to their full wait."""
        self.closed = True
        for event in self._events.values():
            event.set()

    def notify(self, device_id: int) -> None:
        self.wake(device_id)
        if self.relay is not None:
            self.relay(device_id)

    def wake(self, device_id: int) -> None:
        """Wake the device's pulls parked on this server only."""
        event = self._events.get(device_id)
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        """Every parked pull looks at the store again (after wake-ups may have been missed)."""
        for event in self._events.values():
            event.set()

    async def wait(self, device_id: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until notify(device_id) or timeout; True if woken by new work.

        Register before checking the store (call `prepare`), or a notify between the check and
        the wait is missed; `wait` clears the event after it fired.
        """
        event = self.prepare(device_id)
        if self.closed:
            return False
        self._waiters[device_id] = self._waiters.get(device_id, 0) + 1
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
            # lands as the event fires, and a cancelled pull handler would then run on.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
            fired = event.is_set()
            event.clear()
            return fired
        finally:
            self._waiters[device_id] -= 1
            if self._waiters[device_id] == 0:
                del self._waiters[device_id]
                # The event stays (one per device that ever polled): dropping it here would
                # orphan the registration of a pull that prepared but is still looking at the
                # store, and the notify meant for it would be lost until its wait timed out.

    def prepare(self, device_id: int) -> asyncio.Event:
        """Get (creating) the device's event before looking for due work, to not miss a notify."""
        return self._events.setdefault(device_id, asyncio.Event())
