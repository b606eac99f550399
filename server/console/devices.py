"""Devices: the list, adding one (with the agent's enrollment command, its code shown once), pacing
and webhook settings, and the device's events log; deleting one is device_delete.py."""

from __future__ import annotations

import secrets

from aiohttp import web

from simhive.server.console.base import Ctx, ago, int_field, local_time, page
from simhive.server.console.native import OTP_RULES, caller, phone_verified
from simhive.server.console.overview import device_views
from simhive.server.core import enrollment
from simhive.server.core.device_admin import DeviceAdmin
from simhive.server.core.errors import InvalidInput, NotFound
from simhive.server.core.webhooks import validate_url

EVENTS = 100
# Form field -> (lowest, highest, may be empty = no cap), as `simhive-server device set` takes them.
PACING: dict[str, tuple[int, int, bool]] = {
    "delaybetweenrequest": (1, 3600, False),
    "delaybetweeneachsms": (0, 1_000_000, True),
    "sim_min_interval": (0, 86_400, False),
    "sim_per_minute": (0, 1_000_000, True),
    "sim_per_hour": (0, 1_000_000, True),
    "sim_per_day": (0, 1_000_000, True),
}


@page
async def devices(ctx: Ctx) -> web.StreamResponse:
    views = await device_views(ctx.console, ctx.account)
    return ctx.render("devices.html", nav="devices", devices=views)


@page
async def add(ctx: Ctx) -> web.StreamResponse:
    made = await DeviceAdmin(ctx.console.gateway).create(caller(ctx), ctx.field("title"))
    # The API's answer's command, for the address the browser used without the console prefix
    # (agents speak to /agent/v1 at the server's root). The code works once, for 15 minutes;
    # the token itself is never shown: the agent gets it by swapping the code.
    command = enrollment.command(str(ctx.request.url.origin()), made.code)
    return ctx.render("device_added.html", nav="devices", device=made.view.device,
                      command=command, expires=local_time(made.expires, ctx.account.timezone),
                      minutes=enrollment.ENROLL_CODE_SECONDS // 60)  # fmt: skip


async def device_id_of(ctx: Ctx) -> int:
    text = ctx.request.match_info["device_id"]
    if not text.isdigit() or len(text) > 18:
        raise NotFound("Device not found")
    device = await ctx.console.gateway.device_of(ctx.account, int(text), fresh=True)
    return device.id


@page
async def detail(ctx: Ctx) -> web.StreamResponse:
    device_id = await device_id_of(ctx)
    store = ctx.console.gateway.store
    view = next(v for v in await device_views(ctx.console, ctx.account)
                if v.device.id == device_id)  # fmt: skip
    settings = await store.device_agent_settings(device_id)
    events = await store.device_events(device_id, EVENTS)
    now = ctx.console.gateway.clock()
    return ctx.render("device.html", nav="devices", view=view, settings=settings,
                      events=events, when=lambda v: local_time(v, ctx.account.timezone),
                      ago=lambda v: ago(v, now), verified=await phone_verified(ctx),
                      otp=OTP_RULES)  # fmt: skip


@page
async def update(ctx: Ctx) -> web.StreamResponse:
    device_id = await device_id_of(ctx)
    values: dict[str, object] = {}
    for name, (low, high, optional) in PACING.items():
        value = int_field(ctx.field(name), name, allow_empty=optional)
        if value is not None and not low <= value <= high:
            raise InvalidInput(f"{name} must be between {low} and {high}")
        values[name] = value
    for name in ("webhook_status", "webhook_incoming"):
        values[name] = validate_url(ctx.field(name)) or None
    store = ctx.console.gateway.store
    current = await store.device_agent_settings(device_id)
    assert current is not None
    new_secret = None
    if (values["webhook_status"] or values["webhook_incoming"]) and not current.webhook_secret:
        new_secret = secrets.token_hex(32)
        values["webhook_secret"] = new_secret
    await store.update_device_settings(device_id, values)
    ctx.flash("Settings saved; the agent picks up pacing with its next hello.")
    if new_secret is not None:
        ctx.flash(f"Webhook signing secret (shown once): {new_secret}", "secret")
    raise ctx.redirect(f"/devices/{device_id}")
