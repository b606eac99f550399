"""Messages: the filtered list, one message's detail (live), cancel and resend."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from simhive.server.console import live
from simhive.server.console.base import COOKIE, Ctx, int_field, local_time, page
from simhive.server.console.state import CONSOLE, Console
from simhive.server.core import message_ops
from simhive.server.core.dates import resolve_zone, to_us
from simhive.server.core.errors import InvalidInput, NotFound
from simhive.server.core.models import Account, Message
from simhive.server.core.sms_parts import describe
from simhive.server.core.status import FAILURE_CODES, Status
from simhive.server.store.console_base import ConsoleFilter

PAGE_SIZE = 50
# The status filter's choices: a name the user picks -> the codes it means.
STATUS_GROUPS: dict[str, tuple[int, ...]] = {
    "waiting": (Status.NEW, Status.TAKEN, Status.QUEUED),
    "sent": (Status.SENT,),
    "delivered": (Status.DELIVERED,),
    "failed": tuple(sorted({*FAILURE_CODES, Status.NOT_DELIVERED})),
    "incoming": (Status.INCOMING,),
}


def parse_day(text: str, zone_name: str, name: str, *, end: bool = False) -> int | None:
    """A YYYY-MM-DD date in the account's zone -> its first (or, with end, last) microsecond."""
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise InvalidInput(f"{name}: expected a date as YYYY-MM-DD, got {text!r}") from None
    local = day.replace(tzinfo=resolve_zone(zone_name).tz)
    if end:
        return to_us(local + timedelta(days=1)) - 1
    return to_us(local)


def message_filter(ctx: Ctx) -> ConsoleFilter:
    group = ctx.field("status")
    if group and group not in STATUS_GROUPS:
        raise InvalidInput(f"Unknown status filter {group!r}")
    zone = ctx.account.timezone
    return ConsoleFilter(
        account_id=ctx.account.id,
        status=STATUS_GROUPS.get(group, ()),
        device_id=int_field(ctx.field("device"), "device", allow_empty=True),
        number=ctx.field("number") or None,
        search=ctx.field("q") or None,
        created_from=parse_day(ctx.field("from"), zone, "from"),
        created_to=parse_day(ctx.field("to"), zone, "to", end=True),
        before_id=int_field(ctx.field("before"), "before", allow_empty=True),
        limit=PAGE_SIZE,
    )


@page
async def messages(ctx: Ctx) -> web.StreamResponse:
    flt = message_filter(ctx)
    rows = await ctx.console.reads.search_messages(flt)
    devices = await ctx.console.gateway.store.list_devices(ctx.account.id)
    query = {k: ctx.field(k) for k in ("status", "device", "number", "q", "from", "to")}
    older = None
    if len(rows) == PAGE_SIZE:
        older = {**{k: v for k, v in query.items() if v}, "before": str(rows[-1].id)}
    return ctx.render("messages.html", nav="messages", rows=rows, devices=devices,
                      query=query, groups=list(STATUS_GROUPS), older=older,
                      when=lambda v: local_time(v, ctx.account.timezone))  # fmt: skip


def timeline(m: Message) -> list[tuple[str, int | None, str]]:
    """(what, when, detail) from the times the store keeps for a message."""
    steps: list[tuple[str, int | None, str]] = [("Accepted", m.created, "")]
    if m.timetosend is not None:
        steps.append(("Scheduled for", m.timetosend, ""))
    if m.direction == "in":
        return [("Received", m.created, "")]
    if m.status in (Status.TAKEN, Status.QUEUED):
        steps.append(("Taken by the device" if m.status == Status.TAKEN else "Queued on the device",
                      None, f"attempt {m.attempt}"))  # fmt: skip
    if m.senttime is not None:
        steps.append(("Sent", m.senttime, ""))
    if m.status in (Status.DELIVERED, Status.NOT_DELIVERED):
        what = "Delivered" if m.status == Status.DELIVERED else "Not delivered"
        steps.append((what, m.delivered_time, ""))
    if m.status in FAILURE_CODES:
        steps.append(("Not sent", None, f"{m.failure_code or ''} {m.failure_reason or ''}".strip()))
    return steps


async def _detail_values(console: Console, account: Account, sms_id: int) -> dict[str, Any]:
    gw = console.gateway
    m = await gw.message(account, sms_id)
    return {
        "m": m,
        "steps": timeline(m),
        "parts": await console.reads.message_parts(sms_id),
        "outbox": await console.reads.message_outbox(sms_id),
        "text": describe(m.body),
        "waiting": await gw.waiting_reason(m),
        "resendable": m.direction == "out" and m.status in message_ops.RESENDABLE,
        "cancellable": m.direction == "out" and m.status == Status.NEW,
        "when": lambda v: local_time(v, account.timezone),
    }


def _sms_id(ctx: Ctx) -> int:
    text = ctx.request.match_info["sms_id"]
    if not text.isdigit() or len(text) > 18:
        raise NotFound("Sms not found")
    return int(text)


@page
async def detail(ctx: Ctx) -> web.StreamResponse:
    values = await _detail_values(ctx.console, ctx.account, _sms_id(ctx))
    return ctx.render("message.html", nav="messages", **values)


async def detail_live(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    text = request.match_info["sms_id"]
    if not text.isdigit() or len(text) > 18:
        return web.Response(status=404, text="Sms not found")
    sms_id = int(text)

    session = await console.sessions.peek(request.cookies.get(COOKIE))
    csrf = session.csrf if session is not None else ""

    async def fragment(account: Account) -> str:
        values = await _detail_values(console, account, sms_id)
        return console.env.get_template("message_status.html").render(
            url=console.url, csrf=csrf, **values
        )

    return await live.stream(request, "status", fragment)


@page
async def cancel(ctx: Ctx) -> web.StreamResponse:
    sms_id = _sms_id(ctx)
    await message_ops.cancel(ctx.console.gateway, ctx.console.reads, ctx.account, sms_id)
    ctx.flash(f"Message {sms_id} cancelled.")
    raise ctx.redirect(f"/messages/{sms_id}")


@page
async def resend(ctx: Ctx) -> web.StreamResponse:
    sms_id = _sms_id(ctx)
    new_id = await message_ops.resend(ctx.console.gateway, ctx.account, sms_id)
    ctx.flash(f"Message {sms_id} sent again as message {new_id}.")
    raise ctx.redirect(f"/messages/{new_id}")
