"""Every route of /api/v1, declared once (declare.Route), with its thin handler: parse, call the
core (server/core/native.py, sending.py), render (render.py). Scopes are checked by the core."""

from __future__ import annotations

from typing import Any

from simhive.server.api.v1 import render
from simhive.server.api.v1.declare import Ctx, Route
from simhive.server.api.v1.routes_campaigns import CAMPAIGN_ROUTES
from simhive.server.api.v1.routes_confirmed import CONFIRMED_ROUTES
from simhive.server.api.v1.routes_devices import DEVICE_ROUTES
from simhive.server.api.v1.routes_webhooks import WEBHOOK_ROUTES
from simhive.server.api.v1.schema import Arr, Bool, Int, Map, Obj, Schema, Str
from simhive.server.core import limits
from simhive.server.core.dates import parse_input
from simhive.server.core.errors import InvalidInput
from simhive.server.core.keys import new_smpp_password
from simhive.server.core.native import MessageFilters, decode_cursor, encode_cursor
from simhive.server.core.native_models import SCOPES
from simhive.server.core.pools import MAX_WEIGHT, STRATEGIES
from simhive.server.core.sending import PRIORITIES, SendRequest
from simhive.server.core.templates import MAX_VARIABLE_CHARS

ID = Int(minimum=1, maximum=2**62, description="A record id.")
SIM = Int(minimum=0, maximum=1, description="0 = SIM 1, 1 = SIM 2.")
POOL_NAME = Str(min_len=1, max_len=60, description="`all`, `device:<id>` or a named pool.")
QUOTA = Int(minimum=0, maximum=2**40, nullable=True, description="Messages; null: no limit.")
DATE = Str(max_len=40, description="UTC: YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS].")


def _date(args: dict[str, Any], name: str, end_of_day: bool = False) -> int | None:
    text = args.get(name)
    if text is None:
        return None
    parsed = parse_input(text, name)
    if end_of_day and not parsed.has_time:
        return parsed.us + 86_400_000_000 - 1
    return parsed.us


# -- keys -------------------------------------------------------------------------------------

KEY_BODY = Obj(
    fields={
        "name": Str(min_len=1, max_len=limits.MAX_TITLE_CHARS),
        "scopes": Arr(items=Str(enum=SCOPES), min_items=1, max_items=4),
        "allow_get_send": Bool(description="May send with GET /api/v1/send (see its risks)."),
        "rate_per_minute": Int(minimum=1, maximum=limits.KEY_RATE_MAX_PER_MINUTE),
        "daily_quota": QUOTA,
        "monthly_quota": QUOTA,
        "smpp": Bool(description="Also an SMPP login; the answer's smpp_password is shown once."),
        "smpp_system_id": Str(
            min_len=1, max_len=15, description="The SMPP system_id; default: the key's prefix."
        ),
        "smpp_pool": Str(description="Pool of its SMPP submits unless service_type names one."),
    },
    required=("name", "scopes"),
)


async def create_key(ctx: Ctx, a: dict[str, Any]) -> Any:
    password = new_smpp_password() if a.get("smpp") else None
    key, secret = await ctx.native.create_key(
        ctx.caller,
        a["name"],
        a["scopes"],
        allow_get_send=a.get("allow_get_send", False),
        rate_per_minute=a.get("rate_per_minute", limits.KEY_RATE_PER_MINUTE),
        daily_quota=a.get("daily_quota"),
        monthly_quota=a.get("monthly_quota"),
        smpp_system_id=a.get("smpp_system_id"),
        smpp_password=password,
        smpp_pool=a.get("smpp_pool"),
    )
    return {**render.key(key), "key": secret, "smpp_password": password}


async def list_keys(ctx: Ctx, a: dict[str, Any]) -> Any:
    return {"keys": [render.key(k) for k in await ctx.native.list_keys(ctx.caller)]}


async def revoke_key(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.key(await ctx.native.revoke_key(ctx.caller, a["id"]))


# -- messages ---------------------------------------------------------------------------------

VARIABLES = Map(
    values=Str(max_len=MAX_VARIABLE_CHARS),
    description="Template variables: {name} in the template takes name's value.",
)
SEND_FIELDS: dict[str, Schema] = {
    "to": Arr(
        items=Str(min_len=1, max_len=64),
        min_items=1,
        max_items=limits.MAX_API_RECIPIENTS,
        size_code="too_many_numbers",
        code="invalid_numbers",
        description="Recipient numbers (E.164 with +, or national).",
    ),
    "recipients": Arr(
        items=Obj(fields={"to": Str(min_len=1, max_len=64), "variables": VARIABLES},
                  required=("to",)),
        min_items=1,
        max_items=limits.MAX_API_RECIPIENTS,
        size_code="too_many_numbers",
        description="Instead of `to`: each number with its own template variables.",
    ),
    "text": Str(min_len=1, max_len=limits.MAX_BODY_CHARS, description="Or `template_id`."),
    "group_id": Int(minimum=1, maximum=2**62, description="Instead of `to`: a contact group."),
    "template_id": Int(minimum=1, maximum=2**62, description="Send this template, filled."),
    "variables": VARIABLES,
    "pool": POOL_NAME,
    "device_id": Int(minimum=1, maximum=2**62, description="Send from this device."),
    "sim": Int(minimum=0, maximum=1, nullable=True,
               description="With device_id: 0 or 1 pins the SIM; null: any SIM of the device."),
    "send_at": Str(max_len=40, format="date-time", code="invalid_schedule",
                   description="RFC 3339; without an offset it is UTC. Absent: at once."),
    "priority": Str(enum=PRIORITIES, description="high goes before normal."),
    "validity_minutes": Int(minimum=1, maximum=limits.MAX_VALIDITY_MINUTES,
                            description="Expire (status 21) unless a SIM took it by then."),
    "customer_id": Int(minimum=-(2**62), maximum=2**62, description="Your own reference."),
    "all_or_nothing": Bool(description="Refuse the whole request if any number is bad."),
}  # fmt: skip
SEND_BODY = Obj(fields=SEND_FIELDS)


def _send_request(a: dict[str, Any]) -> SendRequest:
    to, per_recipient = a.get("to"), None
    if "recipients" in a:
        if to is not None:
            raise InvalidInput("Give either to or recipients", details={"field": "recipients"})
        to = [r["to"] for r in a["recipients"]]
        per_recipient = [r.get("variables", {}) for r in a["recipients"]]
    return SendRequest(
        to=to or [],
        text=a.get("text"),
        template_id=a.get("template_id"),
        variables=a.get("variables", {}),
        per_recipient=per_recipient,
        group_id=a.get("group_id"),
        pool=a.get("pool"),
        device_id=a.get("device_id"),
        sim=a.get("sim", 0) if a.get("device_id") is not None else None,
        send_at=a.get("send_at"),
        priority=a.get("priority", "normal"),
        validity_minutes=a.get("validity_minutes"),
        customer_id=a.get("customer_id"),
        all_or_nothing=a.get("all_or_nothing", False),
    )


async def send(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.sent(await ctx.native.sender.send(ctx.caller, _send_request(a)))


GET_SEND_QUERY = Obj(
    fields={
        "api_key": Str(max_len=40, pattern="shk_[0-9a-f]{32}",
                       description="The key, when no Authorization header is sent."),
        "to": Str(min_len=1, max_len=1000, pattern="[0-9+ ,()./-]+", code="invalid_numbers",
                  description=f"Comma-separated numbers (at most {limits.MAX_GET_RECIPIENTS})."),
        "text": Str(min_len=1, max_len=limits.MAX_GET_TEXT_CHARS),
        "pool": POOL_NAME,
        "device_id": Int(minimum=1, maximum=2**62),
    },
    required=("to", "text"),
)  # fmt: skip


async def send_by_get(ctx: Ctx, a: dict[str, Any]) -> Any:
    to = [n for n in a["to"].split(",") if n.strip()]
    if len(to) > limits.MAX_GET_RECIPIENTS:
        raise InvalidInput(
            f"Too many recipients: {len(to)} (at most {limits.MAX_GET_RECIPIENTS} by GET)",
            code="too_many_numbers",
        )
    req = _send_request({**a, "to": to or [""]})
    return render.sent(await ctx.native.sender.send(ctx.caller, req, by_get=True))


LIST_QUERY = Obj(
    fields={
        "status": Int(minimum=0, maximum=1000, description="Only this status code."),
        "device_id": Int(minimum=1, maximum=2**62),
        "sim": SIM,
        "pool": POOL_NAME,
        "number": Str(min_len=1, max_len=64, description="Only this recipient."),
        "from": DATE,
        "to": DATE,
        "cursor": Str(max_len=40, description="next_cursor of the previous page."),
        "limit": Int(minimum=1, maximum=limits.MAX_API_PAGE,
                     description=f"Rows per page (default {limits.DEFAULT_API_PAGE})."),
    }
)  # fmt: skip


def _filters(a: dict[str, Any]) -> MessageFilters:
    return MessageFilters(
        status=a.get("status"),
        device_id=a.get("device_id"),
        sim=a.get("sim"),
        pool=a.get("pool"),
        number=a.get("number"),
        created_from=_date(a, "from"),
        created_to=_date(a, "to", end_of_day=True),
        cursor=a.get("cursor"),
        limit=a.get("limit", limits.DEFAULT_API_PAGE),
    )


async def list_messages(ctx: Ctx, a: dict[str, Any]) -> Any:
    page = await ctx.native.messages(ctx.caller, _filters(a))
    return {"messages": [render.message(m) for m in page.messages],
            "next_cursor": page.next_cursor}  # fmt: skip


async def get_message(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.message_full(await ctx.native.message(ctx.caller, a["id"]))


async def cancel_message(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.message_full(await ctx.native.cancel(ctx.caller, a["id"]))


async def list_incoming(ctx: Ctx, a: dict[str, Any]) -> Any:
    page = await ctx.native.messages(ctx.caller, _filters(a), direction="in")
    return {"messages": [render.incoming(m) for m in page.messages],
            "next_cursor": page.next_cursor}  # fmt: skip


async def get_incoming(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.incoming((await ctx.native.message(ctx.caller, a["id"], "in")).message)


# -- templates --------------------------------------------------------------------------------

TEMPLATE_BODY = Obj(
    fields={
        "name": Str(min_len=1, max_len=limits.MAX_TITLE_CHARS),
        "body": Str(min_len=1, max_len=limits.MAX_BODY_CHARS,
                    description="Text with {variable} placeholders."),
    },
    required=("name", "body"),
)  # fmt: skip
TEMPLATE_PATCH = Obj(fields=TEMPLATE_BODY.fields)


async def create_template(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.template(await ctx.native.templates.create(ctx.caller, a["name"], a["body"]))


async def list_templates(ctx: Ctx, a: dict[str, Any]) -> Any:
    return {"templates": [render.template(t) for t in await ctx.native.templates.list(ctx.caller)]}


async def get_template(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.template(await ctx.native.templates.get(ctx.caller, a["id"]))


async def update_template(ctx: Ctx, a: dict[str, Any]) -> Any:
    t = await ctx.native.templates.update(ctx.caller, a["id"], a.get("name"), a.get("body"))
    return render.template(t)


async def delete_template(ctx: Ctx, a: dict[str, Any]) -> Any:
    await ctx.native.templates.delete(ctx.caller, a["id"])
    return {"deleted": a["id"]}


# -- groups -----------------------------------------------------------------------------------

GROUP_BODY = Obj(fields={"name": Str(min_len=1, max_len=limits.MAX_TITLE_CHARS)},
                 required=("name",))  # fmt: skip
CONTACT_BODY = Obj(
    fields={"phone": Str(min_len=1, max_len=64), "name": Str(max_len=limits.MAX_TITLE_CHARS)},
    required=("phone",),
)
IMPORT_BODY = Obj(
    fields={"csv": Str(min_len=1, max_len=limits.MAX_REQUEST_BYTES,
                       description="CSV text whose first line names the columns: phone, name.")},
    required=("csv",),
)  # fmt: skip
CONTACTS_QUERY = Obj(
    fields={
        "cursor": Str(max_len=40, description="next_cursor of the previous page."),
        "limit": Int(minimum=1, maximum=limits.MAX_API_PAGE),
    }
)


async def create_group(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.group(await ctx.native.groups.create(ctx.caller, a["name"]))


async def list_groups(ctx: Ctx, a: dict[str, Any]) -> Any:
    return {"groups": [render.group(g) for g in await ctx.native.groups.all(ctx.caller)]}


async def get_group(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.group(await ctx.native.groups.get(ctx.caller, a["id"]))


async def rename_group(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.group(await ctx.native.groups.rename(ctx.caller, a["id"], a["name"]))


async def delete_group(ctx: Ctx, a: dict[str, Any]) -> Any:
    await ctx.native.groups.delete(ctx.caller, a["id"])
    return {"deleted": a["id"]}


async def list_contacts(ctx: Ctx, a: dict[str, Any]) -> Any:
    limit = a.get("limit", limits.DEFAULT_API_PAGE)
    after = decode_cursor(a["cursor"]) if "cursor" in a else 0
    rows = await ctx.native.groups.contacts(ctx.caller, a["id"], after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"contacts": [render.contact(c) for c in rows],
            "next_cursor": encode_cursor(rows[-1].id) if more and rows else None}  # fmt: skip


async def add_contact(ctx: Ctx, a: dict[str, Any]) -> Any:
    c = await ctx.native.groups.add(ctx.caller, a["id"], a["phone"], a.get("name"))
    return render.contact(c)


async def import_contacts(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.imported(await ctx.native.groups.import_csv(ctx.caller, a["id"], a["csv"]))


async def remove_contact(ctx: Ctx, a: dict[str, Any]) -> Any:
    await ctx.native.groups.remove(ctx.caller, a["id"], a["contact_id"])
    return {"deleted": a["contact_id"]}


# -- quotas, devices, pools -------------------------------------------------------------------


async def balance(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.balance(await ctx.native.balance(ctx.caller))


QUOTA_BODY = Obj(fields={"daily": QUOTA, "monthly": QUOTA}, required=("daily", "monthly"))


async def set_quota(ctx: Ctx, a: dict[str, Any]) -> Any:
    b = await ctx.native.set_account_quota(ctx.caller, a["daily"], a["monthly"])
    return render.balance(b)


async def list_devices(ctx: Ctx, a: dict[str, Any]) -> Any:
    return {"devices": [render.device(d) for d in await ctx.native.devices(ctx.caller)]}


async def get_device(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.profile(await ctx.native.device(ctx.caller, a["id"]))


async def list_pools(ctx: Ctx, a: dict[str, Any]) -> Any:
    return {"pools": [render.pool(p) for p in await ctx.native.pools(ctx.caller)]}


async def get_pool(ctx: Ctx, a: dict[str, Any]) -> Any:
    return render.pool_info(await ctx.native.pool(ctx.caller, a["name"]))


POOL_BODY = Obj(
    fields={
        "name": Str(min_len=1, max_len=40, description="a-z, 0-9, '-' and '_'."),
        "strategy": Str(enum=STRATEGIES),
        "sticky": Bool(description="A recipient keeps the SIM that last texted them."),
    },
    required=("name",),
)
POOL_PATCH = Obj(fields={"strategy": Str(enum=STRATEGIES), "sticky": Bool()})
WEIGHT_BODY = Obj(fields={"weight": Int(minimum=1, maximum=MAX_WEIGHT)})


async def create_pool(ctx: Ctx, a: dict[str, Any]) -> Any:
    info = await ctx.native.create_pool(
        ctx.caller, a["name"], a.get("strategy", "partial"), a.get("sticky", False)
    )
    return render.pool_info(info)


async def update_pool(ctx: Ctx, a: dict[str, Any]) -> Any:
    info = await ctx.native.update_pool(ctx.caller, a["name"], a.get("strategy"), a.get("sticky"))
    return render.pool_info(info)


async def delete_pool(ctx: Ctx, a: dict[str, Any]) -> Any:
    await ctx.native.delete_pool(ctx.caller, a["name"])
    return {"deleted": a["name"]}


async def set_pool_sim(ctx: Ctx, a: dict[str, Any]) -> Any:
    info = await ctx.native.set_pool_sim(
        ctx.caller, a["name"], a["device_id"], a["sim"], a.get("weight", 1)
    )
    return render.pool_info(info)


async def remove_pool_sim(ctx: Ctx, a: dict[str, Any]) -> Any:
    info = await ctx.native.remove_pool_sim(ctx.caller, a["name"], a["device_id"], a["sim"])
    return render.pool_info(info)


_ID: dict[str, Schema] = {"id": ID}
_POOL: dict[str, Schema] = {"name": POOL_NAME}
_DELETED = Obj(fields={"deleted": Int()}, required=("deleted",))
_POOL_SIM: dict[str, Schema] = {"name": POOL_NAME, "device_id": ID, "sim": SIM}

ROUTES: tuple[Route, ...] = (
    Route("POST", "/keys", "createKey", "Create an API key (its secret is shown once).", "keys",
          "admin", create_key, render.NEW_KEY, 201, body=KEY_BODY,
          links={"revokeKey": {"id": "$response.body#/id"}}),
    Route("GET", "/keys", "listKeys", "The account's API keys, revoked ones included.", "keys",
          "admin", list_keys, render.KEYS),
    Route("DELETE", "/keys/{id}", "revokeKey", "Revoke an API key.", "keys", "admin",
          revoke_key, render.KEY, params=_ID, owned=True),
    Route("POST", "/messages", "sendMessages", "Send one text to up to 10,000 recipients.",
          "messages", "send", send, render.SENT, body=SEND_BODY, idempotent=True,
          links={"getMessage": {"id": "$response.body#/messages/0/id"},
                 "cancelMessage": {"id": "$response.body#/messages/0/id"}}),
    Route("GET", "/send", "sendByGet", "Send by URL (keys created with allow_get_send only).",
          "messages", "send", send_by_get, render.SENT, query=GET_SEND_QUERY, key_in_query=True),
    Route("GET", "/messages", "listMessages", "Sent messages, newest first, a page at a time.",
          "messages", "read", list_messages, render.PAGE, query=LIST_QUERY),
    Route("GET", "/messages/{id}", "getMessage", "One message with its status history.",
          "messages", "read", get_message, render.MESSAGE_FULL, params=_ID, owned=True),
    Route("POST", "/messages/{id}/cancel", "cancelMessage", "Cancel a message not yet sent.",
          "messages", "send", cancel_message, render.MESSAGE_FULL, params=_ID, owned=True),
    Route("GET", "/incoming", "listIncoming", "Received SMS, newest first.", "incoming", "read",
          list_incoming, render.INCOMING_PAGE, query=LIST_QUERY),
    Route("GET", "/incoming/{id}", "getIncoming", "One received SMS.", "incoming", "read",
          get_incoming, render.INCOMING, params=_ID, owned=True),
    Route("POST", "/templates", "createTemplate", "Create a template with {variable}"
          " placeholders.", "templates", "send", create_template, render.TEMPLATE, 201,
          body=TEMPLATE_BODY, links={op: {"id": "$response.body#/id"} for op in
                                     ("getTemplate", "updateTemplate", "deleteTemplate")}),
    Route("GET", "/templates", "listTemplates", "The account's templates.", "templates", "read",
          list_templates, render.TEMPLATES),
    Route("GET", "/templates/{id}", "getTemplate", "One template.", "templates", "read",
          get_template, render.TEMPLATE, params=_ID, owned=True),
    Route("PATCH", "/templates/{id}", "updateTemplate", "Rename a template or change its text.",
          "templates", "send", update_template, render.TEMPLATE, params=_ID,
          body=TEMPLATE_PATCH, owned=True),
    Route("DELETE", "/templates/{id}", "deleteTemplate", "Delete a template.", "templates",
          "send", delete_template, Obj(fields={"deleted": Int()}, required=("deleted",)),
          params=_ID, owned=True),
    Route("POST", "/groups", "createGroup", "Create a contact group.", "groups", "send",
          create_group, render.GROUP, 201, body=GROUP_BODY,
          links={op: {"id": "$response.body#/id"} for op in
                 ("getGroup", "renameGroup", "listContacts", "addContact", "importContacts",
                  "deleteGroup")}),
    Route("GET", "/groups", "listGroups", "The account's groups with their contact counts.",
          "groups", "read", list_groups, render.GROUPS),
    Route("GET", "/groups/{id}", "getGroup", "One group.", "groups", "read", get_group,
          render.GROUP, params=_ID, owned=True),
    Route("PATCH", "/groups/{id}", "renameGroup", "Rename a group.", "groups", "send",
          rename_group, render.GROUP, params=_ID, body=GROUP_BODY, owned=True),
    Route("DELETE", "/groups/{id}", "deleteGroup", "Delete a group and its contacts.", "groups",
          "send", delete_group, _DELETED, params=_ID, owned=True),
    Route("GET", "/groups/{id}/contacts", "listContacts", "A group's contacts, oldest first.",
          "groups", "read", list_contacts, render.CONTACTS, params=_ID, query=CONTACTS_QUERY,
          owned=True),
    Route("POST", "/groups/{id}/contacts", "addContact", "Add a contact to a group.", "groups",
          "send", add_contact, render.CONTACT, 201, params=_ID, body=CONTACT_BODY, owned=True,
          links={"removeContact": {"id": "$response.body#/group_id",
                                   "contact_id": "$response.body#/id"}}),
    Route("POST", "/groups/{id}/contacts/import", "importContacts", "Add contacts from CSV.",
          "groups", "send", import_contacts, render.IMPORTED, params=_ID, body=IMPORT_BODY,
          owned=True),
    Route("DELETE", "/groups/{id}/contacts/{contact_id}", "removeContact",
          "Take a contact out of a group.", "groups", "send", remove_contact, _DELETED,
          params={"id": ID, "contact_id": ID}, owned=True),
    Route("GET", "/balance", "getBalance", "Quotas: limits, use and what is left.", "quotas",
          "read", balance, render.BALANCE),
    Route("PUT", "/quotas", "setQuotas", "Set the account's daily and monthly quotas.",
          "quotas", "admin", set_quota, render.BALANCE, body=QUOTA_BODY),
    Route("GET", "/devices", "listDevices", "Devices with their connection state and SIMs.",
          "devices", "read", list_devices, render.DEVICES),
    Route("GET", "/devices/{id}", "getDevice", "A device's profile: SIMs, queues, today's counts.",
          "devices", "read", get_device, render.PROFILE, params=_ID, owned=True),
    Route("GET", "/pools", "listPools", "The account's pools.", "pools", "read", list_pools,
          render.POOLS),
    Route("POST", "/pools", "createPool", "Create a named pool.", "pools", "devices",
          create_pool, render.POOL_INFO, 201, body=POOL_BODY,
          links={op: {"name": "$response.body#/name"} for op in
                 ("getPool", "updatePool", "deletePool")}),
    Route("GET", "/pools/{name}", "getPool", "A pool with its SIMs and waiting messages.",
          "pools", "read", get_pool, render.POOL_INFO, params=_POOL, owned=True),
    Route("PATCH", "/pools/{name}", "updatePool", "Change a pool's strategy or stickiness.",
          "pools", "devices", update_pool, render.POOL_INFO, params=_POOL, body=POOL_PATCH,
          owned=True),
    Route("DELETE", "/pools/{name}", "deletePool", "Delete a named pool (none of its messages"
          " may be unsent).", "pools", "devices", delete_pool,
          Obj(fields={"deleted": Str()}, required=("deleted",)), params=_POOL, owned=True),
    Route("PUT", "/pools/{name}/sims/{device_id}/{sim}", "setPoolSim",
          "Add a SIM to a named pool, or change its weight.", "pools", "devices", set_pool_sim,
          render.POOL_INFO, params=_POOL_SIM, body=WEIGHT_BODY, owned=True),
    Route("DELETE", "/pools/{name}/sims/{device_id}/{sim}", "removePoolSim",
          "Take a SIM out of a named pool.", "pools", "devices", remove_pool_sim,
          render.POOL_INFO, params=_POOL_SIM, owned=True),
    *CAMPAIGN_ROUTES,
    *DEVICE_ROUTES,
    *CONFIRMED_ROUTES,
    *WEBHOOK_ROUTES,
)  # fmt: skip
