"""Answers of the group, contact and campaign routes of /api/v1: each shape declared once beside
its renderer (as render.py does for the others)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simhive.server.api.v1.render import _obj, _time
from simhive.server.api.v1.schema import Arr, Int, Map, Schema, Str, _fail
from simhive.server.core.campaigns import CampaignStats
from simhive.server.core.dates import iso
from simhive.server.core.group_models import CAMPAIGN_STATES, Campaign, Contact, Group
from simhive.server.core.groups import ContactPage, ImportReport
from simhive.server.core.sending import PRIORITIES


@dataclass(frozen=True)
class Num(Schema):
    """A JSON number (answers: rates, durations)."""

    def _check(self, value: Any, where: str) -> float:
        if type(value) not in (int, float):
            raise _fail(where, "must be a number", self.code)
        return float(value)

    def _openapi(self) -> dict[str, Any]:
        return {"type": "number"}


VARIABLES = Map(values=Str(), description="Template variables of this contact.")

GROUP = _obj(
    {
        "id": Int(),
        "name": Str(),
        "contacts": Int(description="How many contacts it holds."),
        "created": _time("", nullable=False),
        "updated": _time("", nullable=False),
    }
)
GROUPS = _obj({"groups": Arr(items=GROUP)})


def group(g: Group) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "contacts": g.contacts, "created": iso(g.created),
            "updated": iso(g.updated)}  # fmt: skip


CONTACT = _obj(
    {
        "id": Int(),
        "group_id": Int(),
        "number": Str(description="Normalised (E.164 where the number allows)."),
        "name": Str(description="Also the {name} template variable; may be empty."),
        "variables": VARIABLES,
        "created": _time("", nullable=False),
        "updated": _time("", nullable=False),
    }
)
CONTACTS = _obj({"contacts": Arr(items=CONTACT), "next_cursor": Int(nullable=True)})


def contact(c: Contact) -> dict[str, Any]:
    return {"id": c.id, "group_id": c.group_id, "number": c.number, "name": c.name,
            "variables": c.variables, "created": iso(c.created),
            "updated": iso(c.updated)}  # fmt: skip


def contacts(p: ContactPage) -> dict[str, Any]:
    return {"contacts": [contact(c) for c in p.contacts], "next_cursor": p.next_cursor}


IMPORT = _obj(
    {
        "rows": Int(description="Data rows read (blank lines are skipped)."),
        "created": Int(),
        "updated": Int(description="Numbers the group had, rewritten (update: true)."),
        "unchanged": Int(description="Numbers the group had, left as they were."),
        "rejected": Int(),
        "errors": Arr(
            items=_obj({"row": Int(description="Line of the file; the header is line 1."),
                        "code": Str(), "message": Str()}),
            description="Each refused row (the first 1,000).",
        ),
    }
)  # fmt: skip


def import_report(r: ImportReport) -> dict[str, Any]:
    return {"rows": r.rows, "created": r.created, "updated": r.updated,
            "unchanged": r.unchanged, "rejected": r.rejected,
            "errors": [{"row": e.row, "code": e.code, "message": e.message}
                       for e in r.errors]}  # fmt: skip


CAMPAIGN = _obj(
    {
        "id": Int(),
        "name": Str(),
        "state": Str(enum=CAMPAIGN_STATES),
        "reason": Str(nullable=True, description="Why it paused itself (e.g. a quota)."),
        "text": Str(nullable=True),
        "template_id": Int(nullable=True),
        "variables": Map(values=Str()),
        "groups": Arr(items=Int()),
        "pool": Str(nullable=True),
        "device_id": Int(nullable=True),
        "sim": Int(nullable=True),
        "priority": Str(enum=PRIORITIES),
        "validity_minutes": Int(nullable=True),
        "recipients": Int(description="Distinct recipients, refused ones included."),
        "send_at": _time("When it starts; null: at once."),
        "created": _time("", nullable=False),
        "started": _time("When its first messages were queued."),
        "finished": _time("When its last message left, or when it was cancelled."),
    }
)
CAMPAIGNS = _obj({"campaigns": Arr(items=CAMPAIGN)})


def campaign(c: Campaign) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "state": c.state,
        "reason": c.reason,
        "text": c.text,
        "template_id": c.template_id,
        "variables": c.variables,
        "groups": list(c.group_ids),
        "pool": c.pool,
        "device_id": c.device_id,
        "sim": c.sim,
        "priority": c.priority,
        "validity_minutes": c.validity_minutes,
        "recipients": c.recipients,
        "send_at": iso(c.send_at),
        "created": iso(c.created),
        "started": iso(c.started),
        "finished": iso(c.finished),
    }


STATS = _obj(
    {
        "id": Int(),
        "name": Str(),
        "state": Str(enum=CAMPAIGN_STATES),
        "recipients": Int(),
        "pending": Int(description="Not yet handed to the queue."),
        "queued": Int(description="Waiting for a SIM or in an agent's journal (status 1-3)."),
        "sent": Int(description="Left a SIM: unknown + delivered + not_delivered."),
        "unknown": Int(description="Sent, no delivery report (yet)."),
        "delivered": Int(),
        "not_delivered": Int(description="Sent; the delivery report says it failed."),
        "failed": Int(description="Never sent: send failures, expired, refused recipients."),
        "cancelled": Int(),
        "delivery_rate": Num(nullable=True, description="delivered / sent; null before any."),
        "duration_seconds": Num(nullable=True,
                                description="Start to the last message sent (or now)."),
        "started": _time(""),
        "finished": _time(""),
        "last_change": _time("The latest status change of its messages."),
    }
)  # fmt: skip


def stats(s: CampaignStats) -> dict[str, Any]:
    c, n = s.campaign, s.counts
    return {
        "id": c.id,
        "name": c.name,
        "state": c.state,
        "recipients": c.recipients,
        "pending": n.pending,
        "queued": n.queued,
        "sent": s.sent,
        "unknown": n.unknown,
        "delivered": n.delivered,
        "not_delivered": n.not_delivered,
        "failed": n.failed,
        "cancelled": n.cancelled,
        "delivery_rate": None if s.delivery_rate is None else round(s.delivery_rate, 4),
        "duration_seconds": None if s.duration_seconds is None else round(s.duration_seconds, 3),
        "started": iso(c.started),
        "finished": iso(c.finished),
        "last_change": iso(n.last_change),
    }
