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
from urllib.parse import quote, urlsplit, urlunsplit

from aiohttp import web

from simhive.agent.http import HttpClient, HttpError
from simhive.server.api.agent import AFTER_REQUEST
from simhive.server.core.history import HistoryPruner, HistorySettings
from simhive.server.core.lease_sweeper import LeaseSweeper
from simhive.server.core.notifier import WorkNotifier
from simhive.server.core.webhooks import (
    USER_AGENT,
    Post,
    RetryPolicy,
    WebhookSender,
    WebhookTransportError,
)
from simhive.server.openssl import load_ssl
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


def webhook_client() -> HttpClient:
    """The webhook senders' HTTP client: agent/http.py's, on asyncio streams. aiohttp's client
    would need `ssl` from the start, and a server without TLS runs without it (server/openssl.py);
    this one takes it when the first https URL comes. Idle connections are kept for reuse."""
    return HttpClient(user_agent=USER_AGENT)


def wire_url(url: str) -> str:
    """`url` with spaces and other characters a request line cannot carry percent-encoded in its
    path and query (as aiohttp's yarl did); escapes already there are kept."""
    parts = urlsplit(url)
    keep = "/:@!$&'()*+,;=%~-._[]?"
    return urlunsplit(parts._replace(path=quote(parts.path, safe=keep),
                                     query=quote(parts.query, safe=keep)))  # fmt: skip


def poster(client: HttpClient, timeout_seconds: float) -> Post:
    """How the webhook senders POST: through `client`, with one deadline per POST, any transport
    failure (refused, reset, timed out, TLS refused, a URL the client cannot use) as
    WebhookTransportError, which their retry policy handles. Redirects are not followed: the
    sender sees their status, as a receiver's answer that is not 2xx."""

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        if url[:6].lower() == "https:":
            load_ssl()
        # The client sends its own User-Agent (USER_AGENT, as the senders' headers say).
        extra = {k: v for k, v in headers.items() if k.lower() != "user-agent"}
        try:
            response = await client.request(
                "POST", wire_url(url), body=body, headers=extra, seconds=timeout_seconds
            )
        except (HttpError, ValueError) as exc:
            raise WebhookTransportError(str(exc)) from None
        return response.status

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
        async with webhook_client() as client:
            post = poster(client, cfg.webhook_timeout_seconds)
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
