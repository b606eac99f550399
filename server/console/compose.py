"""Compose: send to one or more numbers or a contact group, a text or a template, through a pool,
a device or one SIM, now or later.

A text to numbers goes through Gateway.send as ever; a send to a group or from a template goes
through the native API's Sender (server/core/sending.py), the same call as
POST /api/v1/messages, which fills the template per recipient and refuses a recipient whose
placeholders lack a value (template_mismatch). The template's variable fields are swapped in by
htmx when a template is chosen, and shown again with the error after a refused submit (so it
works without JavaScript).

The counter (characters, parts, GSM-7 or UCS-2) is computed by the server with the rules the agent
sends by (server/core/sms_parts.py): htmx posts the text as the user types and swaps in the
answer, and without JavaScript the same counter shows after a submit that was refused.
"""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from simhive.server.console.base import Ctx, page
from simhive.server.console.content_base import (
    caller,
    explain,
    native,
    optional_id,
    variable_values,
    variables,
)
from simhive.server.core.dates import iso, resolve_zone, to_us
from simhive.server.core.errors import GatewayError, InvalidInput
from simhive.server.core.gateway import Outgoing
from simhive.server.core.models import Account
from simhive.server.core.native_models import Template
from simhive.server.core.sending import SendRequest
from simhive.server.core.sms_parts import describe

_TARGET = re.compile(r"^(pool):(.+)$|^(device):(\d{1,18})$|^(sim):(\d{1,18}):([01])$")


def parse_target(value: str) -> tuple[int | None, int | None, str | None]:
    """A target choice -> (device_id, sim, pool) for Outgoing."""
    m = _TARGET.match(value)
    if m is None:
        raise InvalidInput("Choose where to send from")
    if m.group(1):
        return None, None, m.group(2)
    if m.group(3):
        return int(m.group(4)), None, None
    return int(m.group(6)), int(m.group(7)), None


def parse_schedule(text: str, zone_name: str) -> int | None:
    if not text:
        return None
    try:
        local = datetime.strptime(text.replace(" ", "T")[:16], "%Y-%m-%dT%H:%M")
    except ValueError:
        raise InvalidInput(f"Send at: expected a date and time, got {text!r}") from None
    return to_us(local.replace(tzinfo=resolve_zone(zone_name).tz))


async def targets(ctx: Ctx, account: Account) -> list[tuple[str, str]]:
    """(value, label) for the 'send from' choice: pools first, then devices and their SIMs."""
    gw = ctx.console.gateway
    out = [("pool:all", "Any SIM (pool all)")]
    for pool in await gw.routing.list(account):
        if pool.kind == "named":
            out.append((f"pool:{pool.name}", f"Pool {pool.name} ({pool.strategy})"))
    for device, sims in await gw.devices_with_sims(account):
        out.append((f"device:{device.id}", f"{device.title}: any SIM"))
        for sim in sims:
            number = f" {sim.number}" if sim.number else ""
            label = f"{device.title}: SIM {sim.slot + 1}{number}"
            out.append((f"sim:{device.id}:{sim.slot}", label))
    return out


def split_numbers(text: str) -> list[str]:
    """Numbers separated by commas, spaces, semicolons or new lines."""
    return [n for n in re.split(r"[\s,;]+", text) if n]


def _numbers(text: str) -> str:
    """The numbers as the gateway's comma list."""
    return ",".join(split_numbers(text))


def _chosen(templates: list[Template], ctx: Ctx) -> Template | None:
    return next((t for t in templates if str(t.id) == ctx.field("template")), None)


async def _form(ctx: Ctx, status: int = 200, error: str | None = None) -> web.Response:
    who = caller(ctx)
    templates = await native(ctx).templates.list(who)
    chosen = _chosen(templates, ctx)
    names = chosen.variables if chosen is not None else []
    return ctx.render("compose.html", status=status, nav="compose", error=error,
                      targets=await targets(ctx, ctx.account), text=describe(ctx.field("body")),
                      groups=await native(ctx).groups.all(who), templates=templates,
                      chosen=chosen, var_names=names, var_values=variable_values(ctx, names),
                      values={k: ctx.field(k) for k in
                              ("to", "body", "target", "at", "group", "template")})  # fmt: skip


@page
async def compose(ctx: Ctx) -> web.StreamResponse:
    return await _form(ctx)


@page
async def template_fields(ctx: Ctx) -> web.StreamResponse:
    """The chosen template's variable fields (htmx swaps them in when the choice changes)."""
    chosen = _chosen(await native(ctx).templates.list(caller(ctx)), ctx)
    names = chosen.variables if chosen is not None else []
    html = ctx.console.env.get_template("template_fields.html").render(
        var_names=names, var_values=variable_values(ctx, names), chosen=chosen
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")


async def _send_native(ctx: Ctx) -> web.StreamResponse:
    """A send to a group or from a template, as POST /api/v1/messages makes it."""
    group_id = optional_id(ctx.field("group"), "Group not found")
    template_id = optional_id(ctx.field("template"), "Template not found")
    to = split_numbers(ctx.field("to"))
    if group_id is not None and to:
        raise InvalidInput("Send to numbers or to a group, not both")
    body = str(ctx.form.get("body", ""))
    if template_id is not None and body.strip():
        raise InvalidInput("Write a text or choose a template, not both")
    device_id, sim, pool = parse_target(ctx.field("target"))
    result = await native(ctx).sender.send(
        caller(ctx),
        SendRequest(
            to=to,
            text=None if template_id is not None else body,
            template_id=template_id,
            variables=variables(ctx),
            group_id=group_id,
            pool=pool,
            device_id=device_id,
            sim=sim,
            send_at=iso(parse_schedule(ctx.field("at"), ctx.account.timezone)),
        ),
    )
    ids = [r.id for r in result.results if r.id is not None]
    refused = [r for r in result.results if r.error is not None]
    if refused:  # some were stored: say who was not, and why
        named = "; ".join(f"{r.to}: {r.error}" for r in refused[:5])
        more = f" and {len(refused) - 5} more" if len(refused) > 5 else ""
        ctx.flash(f"{len(refused)} recipient(s) refused ({named}{more}).", "error")
    if len(ids) == 1:
        ctx.flash(f"Message {ids[0]} accepted.")
        raise ctx.redirect(f"/messages/{ids[0]}")
    ctx.flash(f"{len(ids)} messages accepted (ids {ids[0]} to {ids[-1]}).")
    raise ctx.redirect("/messages")


@page
async def send(ctx: Ctx) -> web.StreamResponse:
    gw = ctx.console.gateway
    try:
        if ctx.field("group") or ctx.field("template"):
            return await _send_native(ctx)
        device_id, sim, pool = parse_target(ctx.field("target"))
        request = Outgoing(
            sendto=_numbers(ctx.field("to")),
            body=str(ctx.form.get("body", "")),  # the text as typed: no strip
            device_id=device_id,
            sim=sim,
            pool=pool,
            timetosend=parse_schedule(ctx.field("at"), ctx.account.timezone),
        )
        info = describe(request.body)
        if info.error is not None:
            raise InvalidInput(info.error)
        ids = await gw.send(ctx.account, request)
    except GatewayError as exc:
        return await _form(ctx, status=400, error=explain(exc))
    if len(ids) == 1:
        ctx.flash(f"Message {ids[0]} accepted.")
        raise ctx.redirect(f"/messages/{ids[0]}")
    ctx.flash(f"{len(ids)} messages accepted (ids {ids[0]} to {ids[-1]}).")
    raise ctx.redirect("/messages")


@page
async def count(ctx: Ctx) -> web.StreamResponse:
    html = ctx.console.env.get_template("compose_count.html").render(
        text=describe(str(ctx.form.get("body", "")))
    )
    return web.Response(text=html, content_type="text/html", charset="utf-8")
