"""The account page: its email and time zone, and the phone number one-time codes go to (the
device delete's code, device_delete.py). Setting the number and confirming it are the native
API's own calls (`PUT /api/v1/account/phone`, then `POST /api/v1/account/phone/verify`; both
server/core/confirmed.py): the core sends a 6-digit code by SMS through the account's SIMs, and
the number counts as verified once that code comes back here. Wrong codes, lockouts and the
resend wait are the core's, shown in its words."""

from __future__ import annotations

from aiohttp import web

from simhive.server.console.base import Ctx, local_time, page
from simhive.server.console.native import OTP_RULES, caller, confirmed
from simhive.server.core.errors import GatewayError, InvalidInput, LimitReached

# The sizes the API's schema allows (routes_confirmed.py): longer input is refused before the
# core sees it, so, as in the API, an oversized code is not counted as a try.
NUMBER_MAX = 64
CODE_MAX = 12


async def _page(ctx: Ctx, status: int = 200, error: str = "", number: str = "") -> web.Response:
    phone = (await confirmed(ctx).phone(caller(ctx))).phone
    state = "none" if phone is None else "verified" if phone.verified is not None else "unverified"
    return ctx.render("account.html", status=status, nav="account", phone=phone, state=state,
                      verified_at=local_time(phone.verified if phone else None,
                                             ctx.account.timezone),
                      otp=OTP_RULES, error=error, number=number)  # fmt: skip


def _status(exc: GatewayError) -> int:
    return 429 if isinstance(exc, LimitReached) else 400


@page
async def account(ctx: Ctx) -> web.StreamResponse:
    return await _page(ctx)


@page
async def set_phone(ctx: Ctx) -> web.StreamResponse:
    raw = ctx.field("number")
    try:
        if not raw:
            raise InvalidInput("Enter the phone number, international (+ and country code)")
        if len(raw) > NUMBER_MAX:
            raise InvalidInput(f"The number is too long (at most {NUMBER_MAX} characters)")
        made = await confirmed(ctx).set_phone(caller(ctx), raw)
    except GatewayError as exc:  # not a number; a code sent a moment ago; no SIM to send it
        return await _page(ctx, _status(exc), exc.message, raw[:NUMBER_MAX])
    assert made.sent is not None and made.phone is not None
    until = local_time(made.sent.expires, ctx.account.timezone)
    ctx.flash(f"Number {made.phone.number} saved. A code was sent by SMS to {made.sent.to}; it"
              f" works until {until}.")  # fmt: skip
    raise ctx.redirect("/account")


@page
async def verify_phone(ctx: Ctx) -> web.StreamResponse:
    code = ctx.field("code")
    try:
        if not code or len(code) > CODE_MAX:
            raise InvalidInput("Enter the 6-digit code from the SMS")
        made = await confirmed(ctx).verify_phone(caller(ctx), code)
    except GatewayError as exc:  # wrong, expired or used code; locked: "try again in N s"
        return await _page(ctx, _status(exc), exc.message)
    assert made.phone is not None
    ctx.flash(f"Number {made.phone.number} verified: codes to delete a device go to it.")
    raise ctx.redirect("/account")
