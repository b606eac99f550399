"""Live parts of pages over Server-Sent Events.

A live view renders its fragment every `live_interval_seconds` and sends it only when it changed,
as one SSE event whose data is the fragment's HTML (htmx's SSE extension swaps it into the page).
Polling the database from the stream keeps one rule for every change, whoever made it (an agent's
report, the API, another console), at the price of one small query per open view and interval.
The stream ends when the session ends, the client goes away or the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from simhive.server.console.base import COOKIE
from simhive.server.console.state import CONSOLE, STOPPING
from simhive.server.core.models import Account

KEEPALIVE_SECONDS = 15.0  # a comment line now and then, so proxies keep the stream open


def event(name: str, html: str) -> bytes:
    """One SSE event; each line of the fragment becomes a data: line."""
    lines = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{lines}\n".encode()


async def stream(
    request: web.Request, name: str, fragment: Callable[[Account], Awaitable[str]]
) -> web.StreamResponse:
    """Stream `fragment(account)` of the session's account as event `name` while it changes."""
    console = request.app[CONSOLE]
    token = request.cookies.get(COOKIE)
    session = await console.sessions.peek(token)
    account = None
    if session is not None:
        account = await console.gateway.store.account_by_id(session.account_id)
    if account is None:
        return web.Response(status=403, text="Session ended")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    await response.prepare(request)
    stopping = request.app[STOPPING]
    interval = console.settings.live_interval_seconds
    last = None
    quiet = 0.0
    with contextlib.suppress(ConnectionError):
        while not stopping.is_set() and await console.sessions.peek(token) is not None:
            html = await fragment(account)
            if html != last:
                await response.write(event(name, html))
                last = html
                quiet = 0.0
            elif quiet >= KEEPALIVE_SECONDS:
                await response.write(b": keep-alive\n\n")
                quiet = 0.0
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the cancel of a
            # client that went away.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stopping.wait()
            quiet += interval
    return response
