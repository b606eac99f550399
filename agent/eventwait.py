"""Wake-up flags for the agent's loops, and waiting for one with a time limit.

Each modem has about fifteen long-lived wake-ups (the sync loops', the dispatcher's, the
hand-back's, the AT channel's). `asyncio.Event` allocates a deque for its waiters up front,
about 760 bytes each, about 750 KiB at 64 modems; `Flag` does what the agent uses of it
(set, clear, is_set, wait) with a list that stays empty until something waits.

On Python 3.11 `asyncio.wait_for(event.wait(), t)` wraps the wait in a new Task, and the
`asyncio.wait([ensure_future(...)])` idiom makes one per event. The agent's loops sleep this
way all the time: at 64 modems that kept about 700 tasks alive (each with its coroutine frame,
a future and a timer), about 1 MiB of memory. `wait_event` bounds the wait of the current task
with `asyncio.timeout` instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal


class Flag:
    """asyncio.Event's behaviour: set() wakes every waiter; wait() returns at once while set."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            for fut in self._waiters:
                if not fut.done():
                    fut.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> Literal[True]:
        if self._set:
            return True
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
            return True
        finally:
            self._waiters.remove(fut)


async def wait_event(event: Flag | asyncio.Event, seconds: float) -> bool:
    """Return when `event` is set (True) or after `seconds` (False: still not set)."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True


async def wait_flags(flags: Sequence[Flag], seconds: float | None) -> bool:
    """Return when any of `flags` is set (True) or after `seconds` (False; None: no limit).

    One future waits on all of them, in the caller's task: waiting on two flags through
    `asyncio.wait` needed a task per flag and two more callbacks per wake-up."""
    if any(flag.is_set() for flag in flags):
        return True
    fut = asyncio.get_running_loop().create_future()
    for flag in flags:
        flag._waiters.append(fut)
    try:
        if seconds is None:
            await fut
        else:
            async with asyncio.timeout(max(0.0, seconds)):
                await fut
    except TimeoutError:
        return any(flag.is_set() for flag in flags)
    finally:
        for flag in flags:
            flag._waiters.remove(fut)
    return True
