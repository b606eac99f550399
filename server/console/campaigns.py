"""Campaigns: a named send to groups and/or numbers, now or at a set time, through the same use
cases as /api/v1/campaigns (server/core/campaigns.py): the list with each campaign's statistics (the
numbers GET /api/v1/campaigns/{id}/statistics answers), a form to create one, and pause, resume
and cancel. The campaign runner sends them as it does the API's."""

from __future__ import annotations

from aiohttp import web

from simhive.server.api.v1.render_campaigns import stats as api_stats
from simhive.server.console.base import Ctx, local_time, page
from simhive.server.console.compose import parse_schedule, parse_target, split_numbers, targets
from simhive.server.console.content_base import (
    caller,
    explain,
    native,
    optional_id,
    path_id,
    variable_values,
    variables,
)
from simhive.server.core.campaign_models import CANCELLED, FINISHED, PAUSED
from simhive.server.core.campaigns import CampaignSpec
from simhive.server.core.dates import iso
from simhive.server.core.errors import GatewayError, InvalidInput
from simhive.server.core.sending import PRIORITIES

MISSING = "Campaign not found"
FIELDS = ("name", "to", "body", "template", "target", "at", "priority")
# The statistics' counts shown: the very dict GET /api/v1/campaigns/{id}/statistics answers.
COLUMNS = (
    ("recipients", "Recipients"),
    ("pending", "Pending"),
    ("queued", "Queued"),
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("unknown", "Unknown"),
    ("not_delivered", "Not delivered"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


async def _page(ctx: Ctx, status: int = 200, error: str | None = None) -> web.Response:
    n = native(ctx)
    who = caller(ctx)
    stats = [await n.campaigns.stats(who, c.id)
             for c in await n.campaigns.list_campaigns(who, None, None)]  # fmt: skip
    templates = await n.templates.list(who)
    chosen = next((t for t in templates if str(t.id) == ctx.field("template")), None)
    names = chosen.variables if chosen is not None else []
    return ctx.render(
        "campaigns.html", status=status, nav="campaigns", stats=stats, error=error,
        groups=await n.groups.all(who), templates=templates,
        targets=await targets(ctx, ctx.account), priorities=PRIORITIES, chosen=chosen,
        var_names=names, var_values=variable_values(ctx, names),
        chosen_groups=set(ctx.form.getall("group", [])),
        values={k: ctx.field(k) for k in FIELDS}, duration=duration, rate=rate,
        columns=COLUMNS, figures=api_stats,
        ended=(FINISHED, CANCELLED), paused=PAUSED,
        when=lambda v: local_time(v, ctx.account.timezone) or "—",
    )  # fmt: skip


@page
async def campaigns(ctx: Ctx) -> web.StreamResponse:
    return await _page(ctx)


def _spec(ctx: Ctx) -> CampaignSpec:
    group_ids = []
    for value in ctx.form.getall("group", []):
        group_id = optional_id(value if isinstance(value, str) else "", "Group not found")
        if group_id is not None:
            group_ids.append(group_id)
    template_id = optional_id(ctx.field("template"), "Template not found")
    body = str(ctx.form.get("body", ""))
    if template_id is None and not body.strip():
        raise InvalidInput("Write a text or choose a template")
    device_id, sim, pool = parse_target(ctx.field("target"))
    at = parse_schedule(ctx.field("at"), ctx.account.timezone)
    return CampaignSpec(
        name=ctx.field("name"),
        group_ids=group_ids,
        to=split_numbers(ctx.field("to")),
        text=None if template_id is not None else body,
        template_id=template_id,
        variables=variables(ctx) if template_id is not None else {},
        pool=pool,
        device_id=device_id,
        sim=sim,
        send_at=iso(at),
        priority=ctx.field("priority") or "normal",
    )


@page
async def create(ctx: Ctx) -> web.StreamResponse:
    try:
        made = await native(ctx).campaigns.create(caller(ctx), _spec(ctx))
    except GatewayError as exc:
        return await _page(ctx, 400, explain(exc))
    ctx.flash(f"Campaign {made.name} created for {made.recipients} recipient(s).")
    raise ctx.redirect("/campaigns")


async def _act(ctx: Ctx, verb: str) -> web.StreamResponse:
    campaigns = native(ctx).campaigns
    campaign_id = path_id(ctx, "campaign_id", MISSING)
    action = {"pause": campaigns.pause, "resume": campaigns.resume, "cancel": campaigns.cancel}
    done = await action[verb](caller(ctx), campaign_id)
    ctx.flash(f"Campaign {done.name} is {done.state}.")
    raise ctx.redirect("/campaigns")


@page
async def pause(ctx: Ctx) -> web.StreamResponse:
    return await _act(ctx, "pause")


@page
async def resume(ctx: Ctx) -> web.StreamResponse:
    return await _act(ctx, "resume")


@page
async def cancel(ctx: Ctx) -> web.StreamResponse:
    return await _act(ctx, "cancel")
