"""The server's background tasks: the lease sweeper, the webhook sender and the status history
pruner (server/core/history.py).

`setup(app)` registers them on the app's cleanup_ctx (after the store is opened, before it is
closed) and wakes the webhook sender after every agent request, when a report or an incoming SMS
may just have written outbox rows. Tests tune the timings through `app[BACKGROUND]` before the
app starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from simhive.server.api.agent import AFTER_REQUEST
from simhive.server.core.history import HistoryPruner, HistorySettings
from simhive.server.core.lease_sweeper import LeaseSweeper
from simhive.server.core.notifier import WorkNotifier
from simhive.server.core.webhooks import Post, RetryPolicy, WebhookSender, WebhookTransportError
from simhive.server.store.base import Store

log = logging.getLogger("simhive.server")


@dataclass
class BackgroundConfig:
    sweep_interval_seconds: float = 5.0
    webhook_timeout_seconds: float = 10.0
    webhook_idle_poll_seconds: float = 5.0
    webhook_retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class Background:
    config: BackgroundConfig = field(default_factory=BackgroundConfig)
    history: HistorySettings = field(default_factory=HistorySettings)
    sweeper: LeaseSweeper | None = None
    sender: WebhookSender | None = None
    pruner: HistoryPruner | None = None


BACKGROUND: web.AppKey[Background] = web.AppKey("background", Background)


def poster(session: aiohttp.ClientSession) -> Post:
    """How the webhook senders POST: through `session`, any transport failure (refused, reset,
    timed out, a URL yarl rejects) as WebhookTransportError, which their retry policy handles."""

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status
        except (aiohttp.ClientError, ValueError) as exc:
            raise WebhookTransportError(str(exc)) from None

    return post


def setup(
    app: web.Application,
    store: Store,
    notifier: WorkNotifier,
    history: HistorySettings | None = None,
) -> None:
    app[BACKGROUND] = Background(history=history or HistorySettings())

    def after_agent_request() -> None:
        sender = app[BACKGROUND].sender
        if sender is not None:
            sender.wake_soon()

    app[AFTER_REQUEST] = after_agent_request

    async def tasks(app: web.Application) -> AsyncIterator[None]:
        state = app[BACKGROUND]
        cfg = state.config
        timeout = aiohttp.ClientTimeout(total=cfg.webhook_timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            post = poster(session)
            state.sweeper = LeaseSweeper(
                store, notifier, interval_seconds=cfg.sweep_interval_seconds
            )
            state.sender = WebhookSender(
                store,
                post,
                policy=cfg.webhook_retry,
                idle_poll_seconds=cfg.webhook_idle_poll_seconds,
            )
            sender = state.sender
            state.pruner = HistoryPruner(store, state.history)
            # Several servers on one database: wake-ups reach every server, and each job runs
            # on one server at a time (docs/scaling.md); with SQLite both are plain.
            await store.share_wakeups(notifier, on_webhooks=sender.wake)
            running = [
                asyncio.create_task(
                    store.run_once_in_cluster("lease sweeper", state.sweeper.run),
                    name="simhive-lease-sweeper",
                ),
                asyncio.create_task(
                    store.run_once_in_cluster("webhook sender", sender.run),
                    name="simhive-webhooks",
                ),
                asyncio.create_task(
                    store.run_once_in_cluster("history pruner", state.pruner.run),
                    name="simhive-history-pruner",
                ),
            ]
            try:
                yield
            finally:
                for task in running:
                    task.cancel()
                for task in running:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app.cleanup_ctx.append(tasks)
