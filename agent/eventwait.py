"""Wait for an asyncio.Event with a time limit, without a task per wait.

On Python 3.11 `asyncio.wait_for(event.wait(), t)` wraps the wait in a new Task, and the
`asyncio.wait([ensure_future(...)])` idiom makes one per event. The agent's loops sleep this
way all the time, several per modem: at 64 modems that kept about 700 tasks alive (each with
its coroutine frame, a future and a timer), about 1 MiB of memory. `asyncio.timeout` bounds
the wait of the current task instead.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Return when `event` is set (True) or after `seconds` (False: still not set)."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
