"""Queueing ops into one batch of the SQLite store's group-commit writer (tests only)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Sequence
from typing import Any

from simhive.server.store.sqlite import SqliteStore


async def in_one_batch(store: SqliteStore, calls: Sequence[Awaitable[Any]]) -> list[Any]:
    """Run `calls` while the writer thread waits on a gate, so they queue into one batch, as
    under load; returns their results or exceptions in order."""
    gate, entered = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(30)

    held = asyncio.ensure_future(store.writer.submit(hold))
    assert await asyncio.to_thread(entered.wait, 30)  # the writer thread is inside `hold`
    tasks = [asyncio.ensure_future(c) for c in calls]
    await asyncio.sleep(0)  # every call queued its op
    gate.set()
    await held
    return await asyncio.gather(*tasks, return_exceptions=True)
