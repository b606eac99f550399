"""Records of campaigns (native API). Times are UTC microseconds (dates.py)."""

from __future__ import annotations

from dataclasses import dataclass

# Campaign states: scheduled -> running <-> paused; running -> finished; any but finished ->
# cancelled.
SCHEDULED, RUNNING, PAUSED, FINISHED, CANCELLED = (
    "scheduled", "running", "paused", "finished", "cancelled",
)  # fmt: skip
CAMPAIGN_STATES = (SCHEDULED, RUNNING, PAUSED, FINISHED, CANCELLED)


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    account_id: int
    key_id: int  # the key that created it (0: a door without keys); its quotas count the sends
    name: str
    state: str
    text: str | None
    template_id: int | None
    variables: dict[str, str]
    pool: str | None
    device_id: int | None
    sim: int | None
    priority: str
    validity_minutes: int | None
    send_at: int | None
    created: int
    started: int | None
    finished: int | None
    recipients: int
    group_ids: tuple[int, ...]
    reason: str | None  # why it paused itself (e.g. a quota), else None


@dataclass(frozen=True, slots=True)
class NewCampaign:
    account_id: int
    key_id: int
    name: str
    text: str | None
    template_id: int | None
    variables: dict[str, str]
    pool: str | None
    device_id: int | None
    sim: int | None
    priority: str
    validity_minutes: int | None
    send_at: int | None
    group_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CampaignRecipient:
    index: int
    number: str
    variables: dict[str, str]


@dataclass(frozen=True, slots=True)
class CampaignCounts:
    """Recipients by where they are; the buckets besides `sent` add up to the recipients."""

    pending: int  # not yet handed to the queue
    queued: int  # messages waiting for a SIM or in an agent's journal (status 1-3)
    unknown: int  # sent, no delivery report yet (6)
    delivered: int  # 7
    not_delivered: int  # 8: sent, the report says it failed
    failed: int  # never left: send failures, expired, refused numbers or templates
    cancelled: int  # 20, and recipients never handed over because it was cancelled
    last_change: int | None  # the latest status change of its messages
