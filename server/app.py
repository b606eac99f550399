"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from simhive.server import background, console, logs, metrics
from simhive.server.api import agent, compat, enroll, middleware
from simhive.server.api.v1 import http as api_v1
from simhive.server.core.agent import AgentService, AgentSettings
from simhive.server.core.gateway import Gateway
from simhive.server.core.history import HistorySettings
from simhive.server.core.limits import MAX_REQUEST_BYTES
from simhive.server.core.notifier import WorkNotifier
from simhive.server.http_server import HttpSettings, serve
from simhive.server.smpp.settings import SmppSettings
from simhive.server.store.base import Store
from simhive.server.store.engine import make_store

# Options for aiohttp's runner, shared by `run` and the tests: access logs mask secrets.
RUNNER_OPTIONS: dict[str, Any] = {"access_log_class": middleware.MaskingAccessLogger}
STORE: web.AppKey[Store] = web.AppKey("store", Store)
NOTIFIER: web.AppKey[WorkNotifier] = web.AppKey("notifier", WorkNotifier)
SMPP: web.AppKey[Any] = web.AppKey("smpp")


def create_app(
    db: str | Path | Store,
    agent_settings: AgentSettings | None = None,
    smpp: SmppSettings | None = None,
    smpp_ssl: ssl.SSLContext | None = None,
    smpp_socket: socket.socket | None = None,
    *,
    console_settings: console.ConsoleSettings | None = None,
    metrics_settings: metrics.MetricsSettings | None = None,
    history: HistorySettings | None = None,
) -> web.Application:
    """Build the app over a store, opened on startup: a path means the embedded SQLite store, a
    postgresql:// URL the PostgreSQL one (server/store/engine.py); with the web console
    (docs/console.md) and /metrics (docs/metrics.md)."""
    store = db if isinstance(db, Store) else make_store(db)
    notifier = WorkNotifier()
    requests: metrics.RequestCounts = {}
    app = web.Application(
        client_max_size=MAX_REQUEST_BYTES,
        # The request counter is outermost: it sees the status the errors middleware answered.
        middlewares=[metrics.request_counter(requests), middleware.errors],
    )
    app[metrics.REQUESTS] = requests
    app[STORE] = store
    app[NOTIFIER] = notifier
    app[compat.GATEWAY] = Gateway(store, notifier)
    app[agent.AGENT] = AgentService(store, notifier, settings=agent_settings)
    app[compat.GATEWAY].device_token_listeners.append(app[agent.AGENT].forget_device)
    app[compat.GATEWAY].routing.offline_seconds = app[agent.AGENT].settings.agent_offline_seconds
    compat.add_routes(app)
    agent.add_routes(app)
    enroll.add_route(app)  # /agent/v1/enroll: a code, not a device token
    app.router.add_get("/health", _health)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        yield
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    api_v1.add_routes(app)  # after the store opens: it starts the expiry sweeper

    async def end_long_polls(app: web.Application) -> None:
        notifier.close()

    app.on_shutdown.append(end_long_polls)
    # lease sweeper, webhook sender, history pruner (after the store)
    background.setup(app, store, notifier, history)
    if smpp is not None:
        app.cleanup_ctx.append(_smpp_server(smpp, smpp_ssl, smpp_socket))
    if metrics.add_reads(app, store):  # the console's and /metrics' own read connection
        metrics.add_routes(app, metrics_settings or metrics.MetricsSettings())
        console.setup(
            app,
            app[compat.GATEWAY],
            app[metrics.READS],
            console_settings or console.ConsoleSettings(),
        )
    return app


def _smpp_server(
    settings: SmppSettings, context: ssl.SSLContext | None, sock: socket.socket | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The SMPP server (server/smpp) beside the HTTP API, over the app's gateway and store."""

    async def serve_smpp(app: web.Application) -> AsyncIterator[None]:
        from simhive.server.smpp.server import attach

        keys = app[api_v1.NATIVE].keys  # one rate bucket per key over HTTP and SMPP
        smpp = attach(app[compat.GATEWAY], app[STORE], settings, context, sock, keys)
        await smpp.start()
        app[SMPP] = smpp
        yield
        await smpp.close()

    return serve_smpp


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def run(
    db: str | Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    access_log: bool = True,
    ssl_context: ssl.SSLContext | None = None,
    settings: HttpSettings | None = None,
    agent_settings: AgentSettings | None = None,
    smpp: SmppSettings | None = None,
    smpp_ssl: ssl.SSLContext | None = None,
    smpp_socket: socket.socket | None = None,
    console_settings: console.ConsoleSettings | None = None,
    metrics_settings: metrics.MetricsSettings | None = None,
    history: HistorySettings | None = None,
    started: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; `started(url)` once the socket listens. A failure to
    start (the database, the bind) raises StartupError."""
    logs.setup()
    options = {
        **RUNNER_OPTIONS,
        "access_log": logging.getLogger("aiohttp.access") if access_log else None,
    }
    asyncio.run(
        serve(
            create_app(
                db,
                agent_settings,
                smpp,
                smpp_ssl,
                smpp_socket,
                console_settings=console_settings,
                metrics_settings=metrics_settings,
                history=history,
            ),
            host,
            port,
            settings or HttpSettings(),
            ssl_context=ssl_context,
            # In-flight requests finish in milliseconds; long polls are woken.
            shutdown_timeout=10.0,
            handler_options=options,
            started=started,
        )
    )
