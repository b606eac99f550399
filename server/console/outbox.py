"""The webhook outbox: each webhook's state, attempts and last error, and redelivery."""

from __future__ import annotations

from aiohttp import web

from simhive.server.background import BACKGROUND
from simhive.server.console.base import Ctx, int_field, local_time, page
from simhive.server.core.errors import Conflict, InvalidInput

ROWS = 200
STATES = ("pending", "delivered", "dead")


@page
async def outbox(ctx: Ctx) -> web.StreamResponse:
    state = ctx.field("state")
    if state and state not in STATES:
        raise InvalidInput(f"Unknown state {state!r}")
    rows = await ctx.console.reads.outbox(ctx.account.id, state or None, ROWS)
    return ctx.render("outbox.html", nav="webhooks", rows=rows, state=state, states=STATES,
                      when=lambda v: local_time(v, ctx.account.timezone))  # fmt: skip


@page
async def redeliver(ctx: Ctx) -> web.StreamResponse:
    row_id = int_field(ctx.request.match_info["row_id"], "webhook")
    assert row_id is not None
    done = await ctx.console.reads.redeliver(ctx.account.id, row_id, ctx.console.gateway.clock())
    if not done:
        raise Conflict("Only a delivered or dead webhook of this account can be sent again")
    sender = ctx.request.app[BACKGROUND].sender
    if sender is not None:
        sender.wake()
    ctx.flash(f"Webhook {row_id} queued for delivery.")
    raise ctx.redirect("/webhooks")
