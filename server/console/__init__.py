"""The operator's web console (docs/console.md): pages rendered on the server, over the same core
the APIs use. `setup(app, settings)` adds its routes under `settings.prefix` ("" for /).

The routes are declared here by name ("module.handler"), and a page's module is imported when its
route is first asked for: jinja2 and the page modules cost a server several MiB that one nobody
opens the console on does not need (docs/benchmarks.md). The first request of a route pays the
import once (tens of milliseconds, see there).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from simhive.server.console.state import CONSOLE, HERE, STOPPING, Console, ConsoleSettings
from simhive.server.core.gateway import Gateway
from simhive.server.core.sessions import Sessions
from simhive.server.store.console_base import ConsoleStore

__all__ = ["ConsoleSettings", "check_prefix", "setup"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (method, path under the prefix, "module.handler" in this package)
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/", "overview.overview"),
    ("GET", "/login", "auth.login_form"),
    ("POST", "/login", "auth.login"),
    ("POST", "/logout", "auth.logout"),
    ("GET", "/live/overview", "overview.overview_live"),
    ("GET", "/messages", "messages.messages"),
    ("GET", "/messages/{sms_id}", "messages.detail"),
    ("GET", "/live/messages/{sms_id}", "messages.detail_live"),
    ("POST", "/messages/{sms_id}/cancel", "messages.cancel"),
    ("POST", "/messages/{sms_id}/resend", "messages.resend"),
    ("GET", "/compose", "compose.compose"),
    ("POST", "/compose", "compose.send"),
    ("POST", "/compose/count", "compose.count"),
    ("GET", "/inbox", "inbox.inbox"),
    ("GET", "/inbox/{number}", "inbox.conversation"),
    ("POST", "/inbox/{number}", "inbox.reply"),
    ("GET", "/devices", "devices.devices"),
    ("POST", "/devices", "devices.add"),
    ("GET", "/devices/{device_id}", "devices.detail"),
    ("POST", "/devices/{device_id}", "devices.update"),
    ("GET", "/pools", "pools.pools"),
    ("POST", "/pools", "pools.create"),
    ("POST", "/pools/{name}", "pools.update"),
    ("POST", "/pools/{name}/add-sim", "pools.add_sim"),
    ("POST", "/pools/{name}/remove-sim", "pools.remove_sim"),
    ("POST", "/pools/{name}/delete", "pools.delete"),
    ("POST", "/compose/template-fields", "compose.template_fields"),
    # Templates, groups and campaigns (the native API's content, docs/console.md).
    ("GET", "/templates", "templates_page.templates"),
    ("POST", "/templates", "templates_page.create"),
    ("GET", "/templates/{template_id}", "templates_page.edit"),
    ("POST", "/templates/{template_id}", "templates_page.update"),
    ("POST", "/templates/{template_id}/delete", "templates_page.delete"),
    ("GET", "/groups", "groups.groups"),
    ("POST", "/groups", "groups.create"),
    ("GET", "/groups/{group_id}", "groups.detail"),
    ("POST", "/groups/{group_id}", "groups.rename"),
    ("POST", "/groups/{group_id}/delete", "groups.delete"),
    ("POST", "/groups/{group_id}/contacts", "groups.add_contact"),
    ("POST", "/groups/{group_id}/contacts/{contact_id}/delete", "groups.remove_contact"),
    ("POST", "/groups/{group_id}/import", "groups.import_csv"),
    ("GET", "/campaigns", "campaigns.campaigns"),
    ("POST", "/campaigns", "campaigns.create"),
    ("POST", "/campaigns/{campaign_id}/pause", "campaigns.pause"),
    ("POST", "/campaigns/{campaign_id}/resume", "campaigns.resume"),
    ("POST", "/campaigns/{campaign_id}/cancel", "campaigns.cancel"),
    ("GET", "/webhooks", "outbox.outbox"),
    ("POST", "/webhooks/{row_id}/redeliver", "outbox.redeliver"),
    ("GET", "/traffic", "chart.traffic"),
    ("GET", "/keys", "keys.keys"),
    ("POST", "/keys", "keys.create"),
    ("POST", "/keys/{key_id}/revoke", "keys.revoke"),
    ("GET", "/devices/{device_id}/delete", "device_delete.form"),
    ("POST", "/devices/{device_id}/delete-code", "device_delete.send_code"),
    ("POST", "/devices/{device_id}/delete", "device_delete.delete"),
    ("GET", "/account", "account.account"),
    ("POST", "/account/phone", "account.set_phone"),
    ("POST", "/account/phone/verify", "account.verify_phone"),
)


def check_prefix(prefix: str) -> str:
    """'' or a path like /sms (no trailing slash); ValueError otherwise."""
    prefix = prefix.rstrip("/")
    if prefix and (not prefix.startswith("/") or "//" in prefix or any(c in prefix for c in "?#")):
        raise ValueError(f"console prefix must be a path like /console, not {prefix!r}")
    return prefix


def handler(target: str) -> Handler:
    """The page handler `target` ("module.name"), imported at its first request."""
    module, name = target.split(".")
    found: Handler | None = None

    async def page(request: web.Request) -> web.StreamResponse:
        nonlocal found
        if found is None:
            found = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return await found(request)

    page.__name__ = page.__qualname__ = name
    return page


def setup(
    app: web.Application, gateway: Gateway, reads: ConsoleStore, settings: ConsoleSettings
) -> None:
    p = check_prefix(settings.prefix)
    if p != settings.prefix:
        settings = ConsoleSettings(p, settings.session_idle_seconds, settings.session_max_seconds,
                                   settings.live_interval_seconds)  # fmt: skip
    app[CONSOLE] = Console(
        settings,
        gateway,
        reads,
        Sessions(reads, settings.session_idle_seconds, settings.session_max_seconds),
    )

    async def make(app: web.Application) -> None:  # live views (live.py) end when this is set
        app[STOPPING] = asyncio.Event()

    async def stop(app: web.Application) -> None:
        app[STOPPING].set()

    app.on_startup.append(make)
    app.on_shutdown.append(stop)
    r = app.router
    if p:
        r.add_get(p, _to_home(p))
    for method, path, target in ROUTES:
        if method == "GET":
            r.add_get(p + path, handler(target))
        else:
            r.add_post(p + path, handler(target))
    r.add_static(p + "/static", HERE / "static", append_version=False)


def _to_home(prefix: str) -> Handler:
    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(prefix + "/")

    return home
