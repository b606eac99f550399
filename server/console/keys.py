"""API keys: the account's keys for /api/v1, creating one (its secret shown once, on the answer to
the form) and revoking one. Every step is the native API's own call (Native.create_key,
list_keys, revoke_key), on the app's one Native, so a revoked key is refused by the API at once.
A key may also be an SMPP login (docs/smpp.md), as `"smpp": true` on POST /api/v1/keys makes it:
its 8-character SMPP password is generated here, like the API's route does, and shown once."""

from __future__ import annotations

from aiohttp import web

from simhive.server.console.base import Ctx, ago, local_time, page
from simhive.server.console.native import caller, native
from simhive.server.core.errors import InvalidInput, NotFound
from simhive.server.core.keys import SMPP_MAX_SYSTEM_ID, new_smpp_password
from simhive.server.core.native_models import SCOPES

# What each scope allows, in the console's words (server/core/keys.py holds the rules).
SCOPE_HINTS = {
    "send": "send and cancel messages",
    "read": "read messages, devices, pools and the balance",
    "devices": "change devices and pools",
    "admin": "everything, including keys",
}
SCOPE_CHOICES = [(s, SCOPE_HINTS.get(s, "")) for s in SCOPES]  # the core's scopes, in its order


@page
async def keys(ctx: Ctx) -> web.StreamResponse:
    listed = await native(ctx).list_keys(caller(ctx))
    pools = [p.name for p in await ctx.console.gateway.routing.list(ctx.account)
             if p.kind == "named"]  # fmt: skip
    now = ctx.console.gateway.clock()
    return ctx.render("keys.html", nav="keys", keys=listed, scopes=SCOPE_CHOICES, pools=pools,
                      system_id_max=SMPP_MAX_SYSTEM_ID,
                      when=lambda v: local_time(v, ctx.account.timezone),
                      ago=lambda v: ago(v, now))  # fmt: skip


@page
async def create(ctx: Ctx) -> web.StreamResponse:
    # Unknown scopes, none at all, or a bad name: the core refuses them (InvalidInput -> 400).
    scopes = [s for s in ctx.form.getall("scopes", []) if isinstance(s, str)]
    smpp = bool(ctx.field("smpp"))
    # Empty fields are the API's absent ones: system_id defaults to the key's prefix, the pool
    # to `all`. Without the checkbox they are ignored, as the core ignores them without a password.
    system_id = ctx.field("smpp_system_id") or None
    pool = ctx.field("smpp_pool") or None
    password = new_smpp_password() if smpp else None
    try:
        key, secret = await native(ctx).create_key(
            caller(ctx), ctx.field("name"), scopes, smpp_system_id=system_id,
            smpp_password=password, smpp_pool=pool if smpp else None)  # fmt: skip
    except NotFound as exc:  # the pool named in the form: bad input here, not a missing page
        raise InvalidInput(exc.message, details={"field": "smpp_pool"}) from None
    # Shown on this answer only: the key and the SMPP password are stored hashed.
    return ctx.render("key_created.html", nav="keys", key=key, secret=secret,
                      smpp_password=password)  # fmt: skip


@page
async def revoke(ctx: Ctx) -> web.StreamResponse:
    text = ctx.request.match_info["key_id"]
    if not text.isdigit() or len(text) > 18:
        raise NotFound("API key not found")
    key = await native(ctx).revoke_key(caller(ctx), int(text))  # another account's: not found
    ctx.flash(f"Key {key.name} ({key.prefix}…) revoked: the API refuses it from now on.")
    raise ctx.redirect("/keys")
