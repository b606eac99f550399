"""Deleting a device, confirmed by a one-time code, as the native API's OTP-confirmed delete does
(server/core/confirmed.py, the same calls): a button sends a 6-digit code by SMS to the account's
verified number, then a form takes it. Wrong codes count and lock as they do in the API ("try
again in N s"). Without a verified number no code can be sent, and the page says that only the
admin CLI deletes then."""

from __future__ import annotations

from aiohttp import web

from simhive.server.console.base import Ctx, local_time, page
from simhive.server.console.devices import device_id_of
from simhive.server.console.native import OTP_RULES, caller, confirmed, phone_verified
from simhive.server.core.errors import GatewayError, LimitReached, NotFound


async def _page(ctx: Ctx, device_id: int, status: int = 200, error: str = "") -> web.Response:
    device = await ctx.console.gateway.device_of(ctx.account, device_id)
    return ctx.render("device_delete.html", status=status, nav="devices", device=device,
                      verified=await phone_verified(ctx), otp=OTP_RULES, error=error)  # fmt: skip


@page
async def form(ctx: Ctx) -> web.StreamResponse:
    return await _page(ctx, await device_id_of(ctx))


@page
async def send_code(ctx: Ctx) -> web.StreamResponse:
    device_id = await device_id_of(ctx)
    try:
        sent = await confirmed(ctx).request(caller(ctx), device_id, "delete")
    except NotFound:
        raise
    except GatewayError as exc:  # no verified number, a code sent a moment ago, no SIM to send
        return await _page(ctx, device_id, 429 if isinstance(exc, LimitReached) else 400,
                           exc.message)  # fmt: skip
    until = local_time(sent.expires, ctx.account.timezone)
    ctx.flash(f"A code was sent by SMS to {sent.to}; it works until {until}.")
    raise ctx.redirect(f"/devices/{device_id}/delete")


@page
async def delete(ctx: Ctx) -> web.StreamResponse:
    device_id = await device_id_of(ctx)
    device = await ctx.console.gateway.device_of(ctx.account, device_id)
    try:
        await confirmed(ctx).delete(caller(ctx), device_id, ctx.field("otp"))
    except NotFound:
        raise
    except GatewayError as exc:  # wrong, expired or used code; locked: "try again in N s"
        return await _page(ctx, device_id, 429 if isinstance(exc, LimitReached) else 400,
                           exc.message)  # fmt: skip
    ctx.flash(f"Device {device.title} deleted, with its SIMs and messages; its token stopped"
              " working.")  # fmt: skip
    raise ctx.redirect("/devices")
