"""Answers of the campaign routes of /api/v1: each shape declared once beside its renderer (as
render.py does for the others)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simhive.server.api.v1.render import _obj, _time
from simhive.server.api.v1.schema import Arr, Int, Map, Schema, Str, _fail
from simhive.server.core.campaign_models import CAMPAIGN_STATES, Campaign
from simhive.server.core.campaigns import CampaignStats
from simhive.server.core.dates import iso
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
