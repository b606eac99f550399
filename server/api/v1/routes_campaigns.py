"""Routes of /api/v1 for campaigns, declared once (declare.Route) with thin handlers; routes.py
adds them to ROUTES. Scopes are checked by the core (server/core/campaigns.py)."""

from __future__ import annotations

from typing import Any

from simhive.server.api.v1 import render_campaigns as render
from simhive.server.api.v1.declare import Ctx, Route
from simhive.server.api.v1.schema import Arr, Int, Map, Obj, Schema, Str
from simhive.server.core import limits
from simhive.server.core.campaigns import CampaignSpec
from simhive.server.core.dates import parse_input
from simhive.server.core.errors import InvalidInput
from simhive.server.core.sending import PRIORITIES
from simhive.server.core.templates import MAX_VARIABLE_CHARS

ID = Int(minimum=1, maximum=2**62, description="A record id.")
NAME = Str(min_len=1, max_len=limits.MAX_TITLE_CHARS)
VARIABLES = Map(
    values=Str(max_len=MAX_VARIABLE_CHARS),
    max_items=50,  # as the send's variables (schema.Map)
    description="Template variables: {name} in a template takes name's value.",
)
GROUP_IDS = Arr(items=ID, min_items=1, max_items=100,
                description="Contact groups whose contacts receive it.")  # fmt: skip
_ID: dict[str, Schema] = {"id": ID}

# -- campaigns --------------------------------------------------------------------------------

CAMPAIGN_BODY = Obj(
    fields={
        "name": NAME,
        "groups": GROUP_IDS,
        "to": Arr(items=Str(min_len=1, max_len=64), min_items=1,
                  max_items=limits.MAX_API_RECIPIENTS, size_code="too_many_numbers",
                  code="invalid_numbers", description="Numbers, besides or instead of groups."),
        "recipients": Arr(
            items=Obj(fields={"to": Str(min_len=1, max_len=64), "variables": VARIABLES},
                      required=("to",)),
            min_items=1, max_items=limits.MAX_API_RECIPIENTS, size_code="too_many_numbers",
            description="Instead of `to`: each number with its own template variables."),
        "text": Str(min_len=1, max_len=limits.MAX_BODY_CHARS, description="Or `template_id`."),
        "template_id": ID,
        "variables": VARIABLES,
        "pool": Str(min_len=1, max_len=60, description="`all`, `device:<id>` or a named pool."),
        "device_id": ID,
        "sim": Int(minimum=0, maximum=1, nullable=True),
        "send_at": Str(max_len=40, format="date-time", code="invalid_schedule",
                       description="RFC 3339; without an offset it is UTC. Absent: at once."),
        "priority": Str(enum=PRIORITIES),
        "validity_minutes": Int(minimum=1, maximum=limits.MAX_VALIDITY_MINUTES,
                                description="Each message expires unless a SIM took it within"
                                            " this time of being queued."),
    },
    required=("name",),
)  # fmt: skip
CAMPAIGNS_QUERY = Obj(
    fields={
        "from": Str(max_len=40, description="Created on or after (UTC date or date and time)."),
        "to": Str(max_len=40, description="Created on or before (a date: the whole day)."),
    }
)


async def create_campaign(ctx: Ctx, a: dict[str, Any]) -> Any:
    to, per_recipient = a.get("to", []), None
    if "recipients" in a:
        if "to" in a:
            raise InvalidInput("Give either to or recipients", details={"field": "recipients"})
        to = [r["to"] for r in a["recipients"]]
        per_recipient = [r.get("variables", {}) for r in a["recipients"]]
    spec = CampaignSpec(
        name=a["name"],
        group_ids=a.get("groups", []),
        to=to,
        per_recipient=per_recipient,
        text=a.get("text"),
        template_id=a.get("template_id"),
        variables=a.get("variables", {}),
        pool=a.get("pool"),
        device_id=a.get("device_id"),
        sim=a.get("sim", 0) if a.get("device_id") is not None else None,
        send_at=a.get("send_at"),
        priority=a.get("priority", "normal"),
        validity_minutes=a.get("validity_minutes"),
    )
    return render.campaign(await ctx.native.campaigns.create(ctx.caller, spec))


def _when(text: str | None, name: str, end_of_day: bool = False) -> int | None:
    if text is None:
        return None
    parsed = parse_input(text, name)
    if end_of_day and not parsed.has_time:
        return parsed.us + 86_400_000_000 - 1
    return parsed.us


async def list_campaigns(ctx: Ctx, a: dict[str, Any]) -> Any:
    found = await ctx.native.campaigns.list_campaigns(
        ctx.caller, _when(a.get("from"), "from"), _when(a.get("to"), "to", end_of_day=True)
    )
    return {"campaigns": [render.campaign(c) for c in found]}


async def get_campaign(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.campaign(await ctx.native.campaigns.get(ctx.caller, a["id"]))


async def campaign_stats(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.stats(await ctx.native.campaigns.stats(ctx.caller, a["id"]))


async def pause_campaign(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.campaign(await ctx.native.campaigns.pause(ctx.caller, a["id"]))


async def resume_campaign(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.campaign(await ctx.native.campaigns.resume(ctx.caller, a["id"]))


async def cancel_campaign(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.campaign(await ctx.native.campaigns.cancel(ctx.caller, a["id"]))


CAMPAIGN_ROUTES: tuple[Route, ...] = (
    Route("POST", "/campaigns", "createCampaign",
          "A named send to groups or numbers, now or scheduled.", "campaigns", "send",
          create_campaign, render.CAMPAIGN, 201, body=CAMPAIGN_BODY,
          links={op: {"id": "$response.body#/id"} for op in
                 ("getCampaign", "campaignStatistics", "pauseCampaign", "cancelCampaign")}),
    Route("GET", "/campaigns", "listCampaigns", "The account's campaigns, newest first.",
          "campaigns", "read", list_campaigns, render.CAMPAIGNS, query=CAMPAIGNS_QUERY),
    Route("GET", "/campaigns/{id}", "getCampaign", "One campaign.", "campaigns", "read",
          get_campaign, render.CAMPAIGN, params=_ID, owned=True),
    Route("GET", "/campaigns/{id}/statistics", "campaignStatistics",
          "Counts by status, delivery rate and duration.", "campaigns", "read", campaign_stats,
          render.STATS, params=_ID, owned=True),
    Route("POST", "/campaigns/{id}/pause", "pauseCampaign",
          "Hold back what is not yet queued.", "campaigns", "send", pause_campaign,
          render.CAMPAIGN, params=_ID, owned=True),
    Route("POST", "/campaigns/{id}/resume", "resumeCampaign", "Go on with a paused campaign.",
          "campaigns", "send", resume_campaign, render.CAMPAIGN, params=_ID, owned=True),
    Route("POST", "/campaigns/{id}/cancel", "cancelCampaign",
          "Drop what is not yet queued and cancel what no agent took.", "campaigns", "send",
          cancel_campaign, render.CAMPAIGN, params=_ID, owned=True),
)  # fmt: skip
