"""Answers of /api/v1: each record's JSON shape declared once (the schema beside its renderer),
so the OpenAPI document and the answers cannot drift apart; the fuzzer checks the answers
against the served document."""

from __future__ import annotations

from typing import Any

from simhive.server.api.v1.schema import Any_, Arr, Bool, Int, Obj, Schema, Str
from simhive.server.core.dates import iso
from simhive.server.core.encoding import describe
from simhive.server.core.groups import ImportResult
from simhive.server.core.models import Message, Sim
from simhive.server.core.native import Balance, DeviceProfile, DeviceView, MessageView, QuotaView
from simhive.server.core.native_models import (
    SCOPES,
    ApiKey,
    Contact,
    Group,
    StatusChange,
    Template,
)
from simhive.server.core.pools import STRATEGIES, Pool
from simhive.server.core.routing import PoolInfo
from simhive.server.core.sending import SendResult
from simhive.server.core.status import name as status_name


def _time(description: str, nullable: bool = True) -> Str:
    return Str(description=description, format="date-time", nullable=nullable)


def _obj(fields: dict[str, Schema], description: str = "", nullable: bool = False) -> Obj:
    """An answer object: every field is always present (null when it has no value)."""
    return Obj(fields=fields, required=tuple(fields), description=description, nullable=nullable)


ERROR = _obj(
    {
        "error": _obj(
            {
                "code": Str(description="Stable error code (docs/api.md, Error codes)."),
                "message": Str(description="What went wrong, for people."),
                "details": Any_(description="Machine-readable extras, e.g. the field."),
            }
        )
    }
)

# -- keys -------------------------------------------------------------------------------------

KEY = _obj(
    {
        "id": Int(),
        "name": Str(),
        "prefix": Str(description="The key's first characters, to recognise it."),
        "scopes": Arr(items=Str(enum=SCOPES)),
        "allow_get_send": Bool(),
        "rate_per_minute": Int(),
        "daily_quota": Int(nullable=True),
        "monthly_quota": Int(nullable=True),
        "created": _time("", nullable=False),
        "last_used": _time("To the minute."),
        "revoked": _time("When it was revoked; null while it works."),
        "smpp_system_id": Str(nullable=True, description="Its SMPP login; null: none."),
        "smpp_pool": Str(nullable=True, description="Pool of its SMPP submits; null: all."),
    }
)
NEW_KEY = _obj(
    {
        **KEY.fields,
        "key": Str(description="The secret: shown this once only."),
        "smpp_password": Str(
            nullable=True, description="With smpp: the SMPP password, shown this once only."
        ),
    }
)
KEYS = _obj({"keys": Arr(items=KEY)})


def key(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "prefix": k.prefix,
        "scopes": list(k.scopes),
        "allow_get_send": k.allow_get_send,
        "rate_per_minute": k.rate_per_minute,
        "daily_quota": k.daily_quota,
        "monthly_quota": k.monthly_quota,
        "created": iso(k.created),
        "last_used": iso(k.last_used),
        "revoked": iso(k.revoked),
        "smpp_system_id": k.smpp_system_id,
        "smpp_pool": k.smpp_pool,
    }


# -- sending ----------------------------------------------------------------------------------

RECIPIENT = _obj(
    {
        "to": Str(description="The number as given."),
        "number": Str(nullable=True, description="As stored (normalised); null if unreadable."),
        "id": Int(nullable=True, description="The message id; null if refused."),
        "encoding": Str(enum=("gsm7", "ucs2"), description="Of this recipient's text."),
        "parts": Int(),
        "error": _obj({"code": Str(), "message": Str()}, nullable=True),
    }
)
SENT = _obj(
    {
        "accepted": Int(),
        "rejected": Int(),
        "encoding": Str(enum=("gsm7", "ucs2"), nullable=True,
                        description="Of every message; null when their texts differ."),
        "parts": Int(nullable=True, description="Parts per message; null when texts differ."),
        "parts_total": Int(description="Parts of all accepted messages (each billed as one SMS)."),
        "send_at": _time("When the messages are due; null: at once."),
        "valid_until": _time("When an unsent message expires; null: never."),
        "messages": Arr(items=RECIPIENT, description="One entry per recipient, in input order."),
    }
)  # fmt: skip


def sent(r: SendResult) -> dict[str, Any]:
    return {
        "accepted": r.accepted,
        "rejected": r.rejected,
        "encoding": r.encoding,
        "parts": r.parts,
        "parts_total": r.parts_total,
        "send_at": iso(r.send_at),
        "valid_until": iso(r.valid_until),
        "messages": [
            {
                "to": x.to,
                "number": x.number,
                "id": x.id,
                "encoding": x.encoding,
                "parts": x.parts,
                "error": None if x.error is None else {"code": x.error_code, "message": x.error},
            }
            for x in r.results
        ],  # fmt: skip
    }


# -- templates --------------------------------------------------------------------------------

TEMPLATE = _obj(
    {
        "id": Int(),
        "name": Str(),
        "body": Str(),
        "variables": Arr(items=Str(), description="The placeholders' names, in order."),
        "created": _time("", nullable=False),
        "updated": _time("", nullable=False),
    }
)
TEMPLATES = _obj({"templates": Arr(items=TEMPLATE)})


def template(t: Template) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "body": t.body, "variables": t.variables,
            "created": iso(t.created), "updated": iso(t.updated)}  # fmt: skip


# -- groups -----------------------------------------------------------------------------------

GROUP = _obj({"id": Int(), "name": Str(), "contacts": Int(), "created": _time("", nullable=False)})
GROUPS = _obj({"groups": Arr(items=GROUP)})
CONTACT = _obj(
    {
        "id": Int(),
        "group_id": Int(),
        "phone": Str(),
        "name": Str(nullable=True, description="Fills a template's {name}."),
        "created": _time("", nullable=False),
    }
)
CONTACTS = _obj({"contacts": Arr(items=CONTACT), "next_cursor": Str(nullable=True)})
IMPORTED = _obj(
    {
        "added": Int(),
        "skipped": Int(description="Numbers the group had already (or the file twice)."),
        "rejected": Arr(items=_obj({"line": Int(), "error": Str()})),
    }
)


def group(g: Group) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "contacts": g.contacts, "created": iso(g.created)}


def contact(c: Contact) -> dict[str, Any]:
    return {"id": c.id, "group_id": c.group_id, "phone": c.phone, "name": c.name,
            "created": iso(c.created)}  # fmt: skip


def imported(r: ImportResult) -> dict[str, Any]:
    return {"added": len(r.added), "skipped": r.skipped,
            "rejected": [{"line": line, "error": why} for line, why in r.rejected]}  # fmt: skip


# -- messages ---------------------------------------------------------------------------------

HISTORY = _obj(
    {
        "status": Int(),
        "status_name": Str(),
        "at": _time("", nullable=False),
        "device_id": Int(nullable=True),
        "sim": Int(nullable=True),
        "error_code": Str(nullable=True),
    }
)
MESSAGE = _obj(
    {
        "id": Int(),
        "to": Str(),
        "text": Str(),
        "status": Int(description="The status code (the compat API's numbers)."),
        "status_name": Str(),
        "device_id": Int(nullable=True, description="The SIM's device; null until one took it."),
        "sim": Int(nullable=True, description="0 = SIM 1, 1 = SIM 2; null until bound."),
        "pool": Str(nullable=True),
        "priority": Str(enum=("normal", "high")),
        "customer_id": Int(nullable=True),
        "encoding": Str(enum=("gsm7", "ucs2")),
        "parts": Int(),
        "created": _time("", nullable=False),
        "send_at": _time("Scheduled time; null: at once."),
        "sent_at": _time("When the modem sent it."),
        "delivered_at": _time("When the delivery report came."),
        "attempt": Int(),
        "error_code": Str(nullable=True),
        "error_reason": Str(nullable=True),
    }
)
MESSAGE_FULL = _obj(
    {
        **MESSAGE.fields,
        "valid_until": _time("When it expires unless a SIM took it."),
        "waiting": Str(nullable=True, description="Why a pinned message waits, when it does."),
        "history": Arr(items=HISTORY, description="Every status with its time, oldest first."),
        "parts_sent": Arr(
            items=_obj({"index": Int(), "reference": Int(nullable=True)}),
            description="Each part the modem sent, with the message reference (TP-MR) it got;"
            " delivery reports are matched on these.",
        ),
    }
)
PAGE = _obj(
    {
        "messages": Arr(items=MESSAGE),
        "next_cursor": Str(nullable=True, description="Pass as `cursor` for the next page."),
    }
)


def message(m: Message) -> dict[str, Any]:
    encoding, parts = describe(m.body)
    pool_unbound = m.pool is not None and m.status == 1
    return {
        "id": m.id,
        "to": m.sendto,
        "text": m.body,
        "status": m.status,
        "status_name": status_name(m.status),
        "device_id": None if pool_unbound else m.device_id,
        "sim": None if pool_unbound else m.sim,
        "pool": m.pool,
        "priority": "high" if m.urgent else "normal",
        "customer_id": m.customerid,
        "encoding": encoding,
        "parts": parts,
        "created": iso(m.created),
        "send_at": iso(m.timetosend),
        "sent_at": iso(m.senttime),
        "delivered_at": iso(m.delivered_time),
        "attempt": m.attempt,
        "error_code": m.failure_code,
        "error_reason": m.failure_reason,
    }


def history(m: Message, changes: list[StatusChange]) -> list[dict[str, Any]]:
    # The creation is not a change: it is the message's own `created` (status 1, or 5 in).
    first = StatusChange(5 if m.direction == "in" else 1, m.created, None, None, None)
    if m.direction == "in" or m.pool is None:  # pinned from the start
        first = StatusChange(first.status, first.at, m.device_id, m.sim, None)
    return [
        {"status": c.status, "status_name": status_name(c.status), "at": iso(c.at),
         "device_id": c.device_id, "sim": c.sim, "error_code": c.code}
        for c in [first, *changes]
    ]  # fmt: skip


def message_full(v: MessageView) -> dict[str, Any]:
    return {
        **message(v.message),
        "valid_until": iso(v.valid_until),
        "waiting": v.waiting,
        "history": history(v.message, v.history),
        "parts_sent": [{"index": p.index, "reference": p.reference} for p in v.parts],
    }


INCOMING = _obj(
    {
        "id": Int(),
        "from": Str(),
        "text": Str(),
        "device_id": Int(nullable=True),
        "sim": Int(),
        "received_at": _time("", nullable=False),
    }
)
INCOMING_PAGE = _obj({"messages": Arr(items=INCOMING), "next_cursor": Str(nullable=True)})


def incoming(m: Message) -> dict[str, Any]:
    return {"id": m.id, "from": m.sendto, "text": m.body, "device_id": m.device_id, "sim": m.sim,
            "received_at": iso(m.created)}  # fmt: skip


# -- quotas -----------------------------------------------------------------------------------

QUOTA = _obj(
    {
        "limit": Int(nullable=True, description="null: no limit."),
        "used": Int(),
        "remaining": Int(nullable=True),
        "resets_at": _time("", nullable=False),
    }
)
QUOTAS = _obj({"daily": QUOTA, "monthly": QUOTA})
BALANCE = _obj(
    {
        "account": QUOTAS,
        "key": _obj(QUOTAS.fields, nullable=True, description="The calling key's own quotas."),
    }
)


def _quota(q: QuotaView) -> dict[str, Any]:
    return {"limit": q.limit, "used": q.used, "remaining": q.remaining,
            "resets_at": iso(q.resets_at)}  # fmt: skip


def balance(b: Balance) -> dict[str, Any]:
    return {
        "account": {k: _quota(v) for k, v in b.account.items()},
        "key": None if b.key is None else {k: _quota(v) for k, v in b.key.items()},
    }


# -- devices ----------------------------------------------------------------------------------

SIM = _obj(
    {
        "sim": Int(description="0 = SIM 1, 1 = SIM 2."),
        "iccid": Str(),
        "number": Str(),
        "operator": Str(),
        "carrier": Str(),
        "country": Str(),
        "registered": Bool(),
        "roaming": Bool(),
        "signal_dbm": Int(nullable=True),
    }
)
DEVICE = _obj(
    {
        "id": Int(),
        "title": Str(),
        "connection": Str(enum=("online", "offline", "never_seen")),
        "last_seen": _time(""),
        "created": _time("", nullable=False),
        "app_version": Str(nullable=True),
        "sims": Arr(items=SIM),
    }
)
DEVICES = _obj({"devices": Arr(items=DEVICE)})
SIM_PROFILE = _obj(
    {
        **SIM.fields,
        "ready": Bool(nullable=True, description="From the agent's latest pull; null: unknown."),
        "not_ready_reason": Str(nullable=True),
        "queued": Int(description="Messages waiting for this SIM (pinned or bound to it)."),
        "sent_today": Int(),
        "failed_today": Int(),
        "per_day": Int(nullable=True, description="The SIM's daily cap (pacing)."),
        "remaining_today": Int(nullable=True),
    }
)
PROFILE = _obj({**DEVICE.fields, "sims": Arr(items=SIM_PROFILE), "pacing": Any_()})


def _sim(s: Sim) -> dict[str, Any]:
    return {"sim": s.slot, "iccid": s.iccid, "number": s.number, "operator": s.operator,
            "carrier": s.carrier, "country": s.country_iso.lower(), "registered": s.registered,
            "roaming": s.roaming, "signal_dbm": s.signal_dbm}  # fmt: skip


def device(v: DeviceView) -> dict[str, Any]:
    d = v.device
    connection = "never_seen" if d.lastseen is None else "online" if v.online else "offline"
    return {"id": d.id, "title": d.title, "connection": connection, "last_seen": iso(d.lastseen),
            "created": iso(d.created), "app_version": d.appversion,
            "sims": [_sim(s) for s in v.sims]}  # fmt: skip


def profile(p: DeviceProfile) -> dict[str, Any]:
    out = device(p.view)
    settings = p.settings
    per_day = settings.sim_per_day if settings is not None else None
    slots = sorted({s.slot for s in p.view.sims} | set(p.loads))
    by_slot = {s.slot: s for s in p.view.sims}
    sims = []
    for slot in slots:
        load = p.loads.get(slot)
        ready = p.readiness.get(slot)
        base = _sim(by_slot[slot]) if slot in by_slot else _sim(Sim(p.view.device.id, slot))
        sent_today = load.sent_today if load else 0
        sims.append({
            **base,
            "ready": None if ready is None else ready[0],
            "not_ready_reason": None if ready is None or ready[0] else ready[1],
            "queued": load.queued if load else 0,
            "sent_today": sent_today,
            "failed_today": load.failed_today if load else 0,
            "per_day": per_day,
            "remaining_today": None if per_day is None else max(per_day - sent_today, 0),
        })  # fmt: skip
    out["sims"] = sims
    out["pacing"] = {} if settings is None else {
        "min_interval_seconds": settings.sim_min_interval,
        "per_minute": settings.sim_per_minute,
        "per_hour": settings.sim_per_hour,
        "per_day": settings.sim_per_day,
    }  # fmt: skip
    return out


# -- pools ------------------------------------------------------------------------------------

POOL = _obj(
    {
        "name": Str(),
        "kind": Str(enum=("named", "account", "device")),
        "strategy": Str(enum=STRATEGIES),
        "sticky": Bool(),
        "created": _time("", nullable=False),
    }
)
POOLS = _obj({"pools": Arr(items=POOL)})
POOL_INFO = _obj(
    {
        **POOL.fields,
        "waiting": Int(description="Messages waiting for a SIM of the pool."),
        "sims": Arr(
            items=_obj(
                {"device_id": Int(), "sim": Int(), "weight": Int(), "used_this_cycle": Int()}
            )
        ),
    }
)


def pool(p: Pool) -> dict[str, Any]:
    return {"name": p.name, "kind": p.kind, "strategy": p.strategy, "sticky": p.sticky,
            "created": iso(p.created)}  # fmt: skip


def pool_info(info: PoolInfo) -> dict[str, Any]:
    return {
        **pool(info.pool),
        "waiting": info.waiting,
        "sims": [
            {"device_id": s.device_id, "sim": s.slot, "weight": s.weight, "used_this_cycle": s.used}
            for s in info.sims
        ],
    }
