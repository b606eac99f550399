"""The operator's web console (docs/console.md): pages rendered on the server, over the same core
the APIs use. `setup(app, settings)` adds its routes under `settings.prefix` ("" for /)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from simhive.server.console import (
    account,
    auth,
    campaigns,
    chart,
    compose,
    device_delete,
    devices,
    groups,
    inbox,
    keys,
    live,
    messages,
    outbox,
    overview,
    pools,
    templates_page,
)
from simhive.server.console.base import CONSOLE, HERE, Console, ConsoleSettings, make_env
from simhive.server.core.gateway import Gateway
from simhive.server.core.sessions import Sessions
from simhive.server.store.console_base import ConsoleStore

__all__ = ["ConsoleSettings", "setup"]


def check_prefix(prefix: str) -> str:
    """'' or a path like /sms (no trailing slash); ValueError otherwise."""
    prefix = prefix.rstrip("/")
    if prefix and (not prefix.startswith("/") or "//" in prefix or any(c in prefix for c in "?#")):
        raise ValueError(f"console prefix must be a path like /console, not {prefix!r}")
    return prefix


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
        make_env(),
    )
    live.setup(app)
    r = app.router
    if p:
        r.add_get(p, _to_home(p))
    r.add_get(p + "/", overview.overview)
    r.add_get(p + "/login", auth.login_form)
    r.add_post(p + "/login", auth.login)
    r.add_post(p + "/logout", auth.logout)
    r.add_get(p + "/live/overview", overview.overview_live)
    r.add_get(p + "/messages", messages.messages)
    r.add_get(p + "/messages/{sms_id}", messages.detail)
    r.add_get(p + "/live/messages/{sms_id}", messages.detail_live)
    r.add_post(p + "/messages/{sms_id}/cancel", messages.cancel)
    r.add_post(p + "/messages/{sms_id}/resend", messages.resend)
    r.add_get(p + "/compose", compose.compose)
    r.add_post(p + "/compose", compose.send)
    r.add_post(p + "/compose/count", compose.count)
    r.add_get(p + "/inbox", inbox.inbox)
    r.add_get(p + "/inbox/{number}", inbox.conversation)
    r.add_post(p + "/inbox/{number}", inbox.reply)
    r.add_get(p + "/devices", devices.devices)
    r.add_post(p + "/devices", devices.add)
    r.add_get(p + "/devices/{device_id}", devices.detail)
    r.add_post(p + "/devices/{device_id}", devices.update)
    r.add_get(p + "/pools", pools.pools)
    r.add_post(p + "/pools", pools.create)
    r.add_post(p + "/pools/{name}", pools.update)
    r.add_post(p + "/pools/{name}/add-sim", pools.add_sim)
    r.add_post(p + "/pools/{name}/remove-sim", pools.remove_sim)
    r.add_post(p + "/pools/{name}/delete", pools.delete)
    r.add_post(p + "/compose/template-fields", compose.template_fields)
    _content_routes(r, p)
    r.add_get(p + "/webhooks", outbox.outbox)
    r.add_post(p + "/webhooks/{row_id}/redeliver", outbox.redeliver)
    r.add_get(p + "/traffic", chart.traffic)
    r.add_get(p + "/keys", keys.keys)
    r.add_post(p + "/keys", keys.create)
    r.add_post(p + "/keys/{key_id}/revoke", keys.revoke)
    r.add_get(p + "/devices/{device_id}/delete", device_delete.form)
    r.add_post(p + "/devices/{device_id}/delete-code", device_delete.send_code)
    r.add_post(p + "/devices/{device_id}/delete", device_delete.delete)
    r.add_get(p + "/account", account.account)
    r.add_post(p + "/account/phone", account.set_phone)
    r.add_post(p + "/account/phone/verify", account.verify_phone)
    r.add_static(p + "/static", HERE / "static", append_version=False)


def _content_routes(r: web.UrlDispatcher, p: str) -> None:
    """Templates, groups and campaigns (the native API's content, docs/console.md)."""
    r.add_get(p + "/templates", templates_page.templates)
    r.add_post(p + "/templates", templates_page.create)
    r.add_get(p + "/templates/{template_id}", templates_page.edit)
    r.add_post(p + "/templates/{template_id}", templates_page.update)
    r.add_post(p + "/templates/{template_id}/delete", templates_page.delete)
    r.add_get(p + "/groups", groups.groups)
    r.add_post(p + "/groups", groups.create)
    r.add_get(p + "/groups/{group_id}", groups.detail)
    r.add_post(p + "/groups/{group_id}", groups.rename)
    r.add_post(p + "/groups/{group_id}/delete", groups.delete)
    r.add_post(p + "/groups/{group_id}/contacts", groups.add_contact)
    r.add_post(p + "/groups/{group_id}/contacts/{contact_id}/delete", groups.remove_contact)
    r.add_post(p + "/groups/{group_id}/import", groups.import_csv)
    r.add_get(p + "/campaigns", campaigns.campaigns)
    r.add_post(p + "/campaigns", campaigns.create)
    for verb in ("pause", "resume", "cancel"):
        r.add_post(p + "/campaigns/{campaign_id}/" + verb, getattr(campaigns, verb))


def _to_home(prefix: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently(prefix + "/")

    return home
