"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from simhive.server import background, logs
from simhive.server.api import agent, compat, middleware
from simhive.server.core.agent import AgentService, AgentSettings
from simhive.server.core.gateway import Gateway
from simhive.server.core.limits import MAX_REQUEST_BYTES
from simhive.server.core.notifier import WorkNotifier
from simhive.server.http_server import HttpSettings, serve
from simhive.server.store.base import Store
from simhive.server.store.sqlite import SqliteStore

# Options for aiohttp's runner, shared by `run` and the tests: access logs mask secrets.
RUNNER_OPTIONS: dict[str, Any] = {"access_log_class": middleware.MaskingAccessLogger}
STORE: web.AppKey[Store] = web.AppKey("store", Store)
NOTIFIER: web.AppKey[WorkNotifier] = web.AppKey("notifier", WorkNotifier)


def create_app(
    db: str | Path | Store, agent_settings: AgentSettings | None = None
) -> web.Application:
    """Build the app over a store (a path means the embedded SQLite store, opened on startup)."""
    store = db if isinstance(db, Store) else SqliteStore(db)
    notifier = WorkNotifier()
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[middleware.errors])
    app[STORE] = store
    app[NOTIFIER] = notifier
    app[compat.GATEWAY] = Gateway(store, notifier)
    app[agent.AGENT] = AgentService(store, notifier, settings=agent_settings)
    app[compat.GATEWAY].routing.offline_seconds = app[agent.AGENT].settings.agent_offline_seconds
    compat.add_routes(app)
    agent.add_routes(app)
    app.router.add_get("/health", _health)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        yield
        await store.close()

    app.cleanup_ctx.append(lifecycle)

    async def end_long_polls(app: web.Application) -> None:
        notifier.close()

    app.on_shutdown.append(end_long_polls)
    background.setup(app, store, notifier)  # lease sweeper, webhook sender (after the store)
    return app


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
            create_app(db, agent_settings),
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
