"""Inbox: incoming SMS grouped by number as conversations, with a reply box.

A reply goes out through the SIM that received the number's latest message, so the other side sees
the same sender number it wrote to.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from simhive.server.console.base import Ctx, local_time, page
from simhive.server.core.errors import GatewayError, InvalidInput, NotFound
from simhive.server.core.gateway import Outgoing
from simhive.server.core.models import Message

CONVERSATIONS = 100
THREAD = 200


@page
async def inbox(ctx: Ctx) -> web.StreamResponse:
    rows = await ctx.console.reads.conversations(ctx.account.id, CONVERSATIONS)
    return ctx.render("inbox.html", nav="inbox", rows=rows,
                      when=lambda v: local_time(v, ctx.account.timezone))  # fmt: skip


def _number(ctx: Ctx) -> str:
    number = ctx.request.match_info["number"].strip()
    if not number or len(number) > 64:
        raise NotFound("No conversation with this number")
    return number


async def _thread(ctx: Ctx, number: str) -> tuple[list[Message], Message | None]:
    messages = await ctx.console.reads.conversation(ctx.account.id, number, THREAD)
    last_in = next((m for m in reversed(messages) if m.direction == "in"), None)
    return messages, last_in


async def _page(ctx: Ctx, number: str, status: int = 200, error: str | None = None) -> web.Response:
    messages, last_in = await _thread(ctx, number)
    if not messages:
        raise NotFound("No conversation with this number")
    return ctx.render("conversation.html", status=status, nav="inbox", number=number,
                      messages=messages, last_in=last_in, error=error, body=ctx.field("body"),
                      when=lambda v: local_time(v, ctx.account.timezone))  # fmt: skip


@page
async def conversation(ctx: Ctx) -> web.StreamResponse:
    return await _page(ctx, _number(ctx))


@page
async def reply(ctx: Ctx) -> web.StreamResponse:
    number = _number(ctx)
    _messages, last_in = await _thread(ctx, number)
    if last_in is None or last_in.device_id is None:
        raise NotFound("No incoming message from this number to reply to")
    body = str(ctx.form.get("body", ""))
    try:
        if not body.strip():
            raise InvalidInput("Write a reply first")
        (sms_id,) = await ctx.console.gateway.send(
            ctx.account,
            Outgoing(sendto=number, body=body, device_id=last_in.device_id, sim=last_in.sim),
        )
    except GatewayError as exc:
        return await _page(ctx, number, status=400, error=exc.message)
    ctx.flash(f"Reply accepted as message {sms_id}.")
    raise ctx.redirect(f"/inbox/{quote(number, safe='+')}")
