"""What the console keeps in the app, importable without the pages: its settings, the Console
object (CONSOLE) and the live views' stop signal. jinja2 and the page modules are loaded at the
console's first request (server/console/__init__.py), so a server nobody opens the console on never
holds them (docs/benchmarks.md has the memory this saves)."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from simhive.server.core import sessions
from simhive.server.core.gateway import Gateway
from simhive.server.core.sessions import Sessions
from simhive.server.store.console_base import ConsoleStore

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent


@dataclass(frozen=True)
class ConsoleSettings:
    prefix: str = ""  # "" serves the console at /, "/sms" at /sms/ (behind a reverse proxy)
    session_idle_seconds: float = sessions.IDLE_SECONDS
    session_max_seconds: float = sessions.MAX_SECONDS
    live_interval_seconds: float = 1.0  # how often a live view (SSE) looks for changes


@dataclass
class Console:
    settings: ConsoleSettings
    gateway: Gateway
    reads: ConsoleStore
    sessions: Sessions

    @functools.cached_property
    def env(self) -> jinja2.Environment:
        """The template environment, made when the first page renders."""
        from simhive.server.console.base import make_env

        return make_env()

    def url(self, path: str) -> str:
        return self.settings.prefix + path


CONSOLE: web.AppKey[Console] = web.AppKey("console", Console)
STOPPING: web.AppKey[asyncio.Event] = web.AppKey("console_stopping", asyncio.Event)
