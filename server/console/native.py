"""The console's way into the native API's core: the app's own `Native` (so a key revoked here is
dropped from the API's key cache at once) and the caller a console session stands for."""

from __future__ import annotations

from simhive.server.api.v1.http import NATIVE
from simhive.server.console.base import Ctx
from simhive.server.core.confirmed import Confirmed
from simhive.server.core.keys import Caller
from simhive.server.core.native import Native
from simhive.server.core.otp import LOCK_SECONDS, MAX_TRIES, OTP_SECONDS, RESEND_SECONDS

# The one-time code's rules, as the delete steps describe them (otp.py holds the numbers).
OTP_RULES = {"valid_min": OTP_SECONDS // 60, "resend_min": RESEND_SECONDS // 60,
             "tries": MAX_TRIES, "lock_min": LOCK_SECONDS // 60}  # fmt: skip


def native(ctx: Ctx) -> Native:
    return ctx.request.app[NATIVE]


def caller(ctx: Ctx) -> Caller:
    """A logged-in account holds every scope, like the admin CLI: no key limits it."""
    return Caller(ctx.account)


def confirmed(ctx: Ctx) -> Confirmed:
    """One-time codes, sent through the API's own sender."""
    n = native(ctx)
    return Confirmed(n.gw, n.sender)


async def phone_verified(ctx: Ctx) -> bool:
    """Whether a code can confirm a device delete: the account's number is set and verified."""
    phone = (await confirmed(ctx).phone(caller(ctx))).phone
    return phone is not None and phone.verified is not None
