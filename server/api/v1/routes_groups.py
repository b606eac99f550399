"""Routes of /api/v1 for contact groups, their contacts (with CSV import) and campaigns, declared
once (declare.Route) with thin handlers; routes.py adds them to ROUTES. Scopes are checked by
the core (server/core/groups.py, campaigns.py)."""

from __future__ import annotations

from typing import Any

from simhive.server.api.v1 import render_groups as render
from simhive.server.api.v1.declare import Ctx, Route
from simhive.server.api.v1.schema import Arr, Bool, Int, Map, Obj, Schema, Str
from simhive.server.core import limits
from simhive.server.core.campaigns import CampaignSpec
from simhive.server.core.dates import parse_input
from simhive.server.core.errors import InvalidInput
from simhive.server.core.groups import MAX_CONTACT_VARIABLES, MAX_CSV_CHARS
from simhive.server.core.sending import PRIORITIES
from simhive.server.core.templates import MAX_VARIABLE_CHARS

ID = Int(minimum=1, maximum=2**62, description="A record id.")
NAME = Str(min_len=1, max_len=limits.MAX_TITLE_CHARS)
VARIABLES = Map(
    values=Str(max_len=MAX_VARIABLE_CHARS),
    max_items=MAX_CONTACT_VARIABLES,
    description="Template variables: {name} in a template takes name's value.",
)
GROUP_IDS = Arr(items=ID, min_items=1, max_items=100,
                description="Contact groups whose contacts receive it.")  # fmt: skip
_ID: dict[str, Schema] = {"id": ID}
_CONTACT: dict[str, Schema] = {"id": ID, "contact_id": ID}
DELETED = Obj(fields={"deleted": Int()}, required=("deleted",))

# -- groups -----------------------------------------------------------------------------------

GROUP_BODY = Obj(fields={"name": NAME}, required=("name",))


async def create_group(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.group(await ctx.native.groups.create(ctx.caller, a["name"]))


async def list_groups(ctx: Ctx, a: dict[str, Any]) -> Any:
    return {"groups": [render.group(g) for g in await ctx.native.groups.list_groups(ctx.caller)]}


async def get_group(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.group(await ctx.native.groups.get(ctx.caller, a["id"]))


async def rename_group(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.group(await ctx.native.groups.rename(ctx.caller, a["id"], a["name"]))


async def delete_group(ctx: Ctx, a: dict[str, Any]) -> Any:
    await ctx.native.groups.delete(ctx.caller, a["id"])
    return {"deleted": a["id"]}


# -- contacts ---------------------------------------------------------------------------------

CONTACT_FIELDS: dict[str, Schema] = {
    "number": Str(min_len=1, max_len=64, code="invalid_numbers"),
    "name": Str(max_len=limits.MAX_TITLE_CHARS, description="Also the {name} variable."),
    "variables": VARIABLES,
}
CONTACT_BODY = Obj(fields=CONTACT_FIELDS, required=("number",))
CONTACT_PATCH = Obj(fields=CONTACT_FIELDS)
CONTACTS_QUERY = Obj(
    fields={
        "cursor": Int(minimum=0, maximum=2**62, description="next_cursor of the previous page."),
        "limit": Int(minimum=1, maximum=limits.MAX_API_PAGE,
                     description=f"Rows per page (default {limits.DEFAULT_API_PAGE})."),
    }
)  # fmt: skip
IMPORT_BODY = Obj(
    fields={
        "csv": Str(min_len=1, max_len=MAX_CSV_CHARS,
                   description="CSV text: a header line naming `number` (or `phone`), optionally"
                               " `name`, and variables; then one contact per line."),
        "update": Bool(description="Rewrite the name and variables of numbers the group has"
                                   " (default: leave them)."),
    },
    required=("csv",),
)  # fmt: skip


async def create_contact(ctx: Ctx, a: dict[str, Any]) -> Any:
    c = await ctx.native.groups.add_contact(
        ctx.caller, a["id"], a["number"], a.get("name", ""), a.get("variables", {})
    )
    return render.contact(c)


async def list_contacts(ctx: Ctx, a: dict[str, Any]) -> Any:
    page = await ctx.native.groups.contacts(
        ctx.caller, a["id"], a.get("cursor", 0), a.get("limit", limits.DEFAULT_API_PAGE)
    )
    return render.contacts(page)


async def get_contact(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.contact(await ctx.native.groups.contact(ctx.caller, a["id"], a["contact_id"]))


async def update_contact(ctx: Ctx, a: dict[str, Any]) -> Any:
    c = await ctx.native.groups.update_contact(
        ctx.caller, a["id"], a["contact_id"], a.get("number"), a.get("name"), a.get("variables")
    )
    return render.contact(c)


async def delete_contact(ctx: Ctx, a: dict[str, Any]) -> Any:
    await ctx.native.groups.delete_contact(ctx.caller, a["id"], a["contact_id"])
    return {"deleted": a["contact_id"]}


async def import_contacts(ctx: Ctx, a: dict[str, Any]) -> Any:
    report = await ctx.native.groups.import_csv(ctx.caller, a["id"], a["csv"],
                                                a.get("update", False))  # fmt: skip
    return render.import_report(report)


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


GROUP_ROUTES: tuple[Route, ...] = (
    Route("POST", "/groups", "createGroup", "Create a contact group.", "groups", "send",
          create_group, render.GROUP, 201, body=GROUP_BODY),
    Route("GET", "/groups", "listGroups", "The account's contact groups.", "groups", "read",
          list_groups, render.GROUPS),
    Route("GET", "/groups/{id}", "getGroup", "One contact group.", "groups", "read", get_group,
          render.GROUP, params=_ID, owned=True),
    Route("PATCH", "/groups/{id}", "renameGroup", "Rename a contact group.", "groups", "send",
          rename_group, render.GROUP, params=_ID, body=GROUP_BODY, owned=True),
    Route("DELETE", "/groups/{id}", "deleteGroup", "Delete a group and its contacts.", "groups",
          "send", delete_group, DELETED, params=_ID, owned=True),
    Route("POST", "/groups/{id}/contacts", "createContact", "Add a contact to a group.",
          "groups", "send", create_contact, render.CONTACT, 201, params=_ID, body=CONTACT_BODY,
          owned=True),
    Route("GET", "/groups/{id}/contacts", "listContacts", "A group's contacts, a page at a time.",
          "groups", "read", list_contacts, render.CONTACTS, params=_ID, query=CONTACTS_QUERY,
          owned=True),
    Route("GET", "/groups/{id}/contacts/{contact_id}", "getContact", "One contact.", "groups",
          "read", get_contact, render.CONTACT, params=_CONTACT, owned=True),
    Route("PATCH", "/groups/{id}/contacts/{contact_id}", "updateContact",
          "Change a contact's number, name or variables.", "groups", "send", update_contact,
          render.CONTACT, params=_CONTACT, body=CONTACT_PATCH, owned=True),
    Route("DELETE", "/groups/{id}/contacts/{contact_id}", "deleteContact", "Delete a contact.",
          "groups", "send", delete_contact, DELETED, params=_CONTACT, owned=True),
    Route("POST", "/groups/{id}/import", "importContacts",
          "Import contacts from CSV; each refused row is named.", "groups", "send",
          import_contacts, render.IMPORT, params=_ID, body=IMPORT_BODY, owned=True),
    Route("POST", "/campaigns", "createCampaign",
          "A named send to groups or numbers, now or scheduled.", "campaigns", "send",
          create_campaign, render.CAMPAIGN, 201, body=CAMPAIGN_BODY),
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
