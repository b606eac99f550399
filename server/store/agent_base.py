"""Storage for the agent protocol's background work: the lease sweeper, per-device agent settings
(per-SIM pacing, webhook URLs and secret) and the durable webhook outbox.

Separate from `Store` (server/store/base.py) so each interface stays readable; SqliteStore
implements both. Outbox rows are written by the store itself in the same transaction as the change
they announce (SQLite: triggers on `messages`, see sqlite_schema.py migration 3), so no code path
that changes a status can forget its webhook, and a crash cannot keep one without the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from simhive.server.core.models import Message

# Columns `update_device_settings` may set (the CLI's `device set` options).
AGENT_SETTING_COLUMNS = (
    "delaybetweenrequest",
    "delaybetweeneachsms",
    "sim_min_interval",
    "sim_per_minute",
    "sim_per_hour",
    "sim_per_day",
    "webhook_incoming",
    "webhook_status",
    "webhook_secret",
)


@dataclass(frozen=True, slots=True)
class DeviceAgentSettings:
    """Per-device settings beyond the compat `Device` record (all changed with `device set`)."""

    device_id: int
    delaybetweenrequest: int
    delaybetweeneachsms: int | None
    sim_min_interval: int
    sim_per_minute: int | None
    sim_per_hour: int | None
    sim_per_day: int | None
    webhook_incoming: str | None
    webhook_status: str | None
    webhook_secret: str | None


@dataclass(frozen=True, slots=True)
class WebhookJob:
    """One pending outbox row with what its body is rendered from.

    `status` is the status the row announces (a later change has its own row), `message` the
    message as it is now (text, recipient, send time), `secret` the device's current secret."""

    id: int
    device_id: int
    kind: str  # 'status' or 'incoming'
    event_key: str
    url: str
    status: int
    attempts: int
    secret: str | None
    message: Message
    device_title: str
    timezone: str
    sent_at: int | None  # incoming: when the sender's SMSC stamped it


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A modem or SIM health change the agent reported with `status` (docs/agent-protocol.md)."""

    at: int
    kind: str  # e.g. modem, sim
    state: str  # e.g. disconnected, quarantined
    reason: str = ""
    slot: int | None = None


class AgentExtrasStore(ABC):
    # -- leases ----------------------------------------------------------------------------
    @abstractmethod
    async def expire_leases(self, now: int) -> set[int]:
        """Return every expired, uncommitted lease's messages to status 1 (all devices).
        Returns the ids of the devices that got work back."""

    # -- device settings -------------------------------------------------------------------
    @abstractmethod
    async def device_agent_settings(self, device_id: int) -> DeviceAgentSettings | None: ...

    @abstractmethod
    async def update_device_settings(self, device_id: int, values: dict[str, object]) -> None:
        """Set the named AGENT_SETTING_COLUMNS; raises ValueError for other names."""

    # -- device status events --------------------------------------------------------------
    @abstractmethod
    async def add_device_events(
        self, device_id: int, events: Sequence[DeviceEvent], now: int
    ) -> None:
        """Append the agent's status events (kept for operators: `device events`)."""

    @abstractmethod
    async def device_events(self, device_id: int, limit: int = 100) -> list[DeviceEvent]:
        """The device's newest `limit` events, oldest first."""

    # -- webhook outbox --------------------------------------------------------------------
    @abstractmethod
    async def due_webhooks(self, now: int, limit: int) -> list[WebhookJob]:
        """Pending rows whose next attempt is due, oldest first."""

    @abstractmethod
    async def next_webhook_time(self) -> int | None:
        """The earliest next attempt of a pending row that is not waiting behind an older
        pending row of its message; None when there is none."""

    @abstractmethod
    async def webhook_delivered(self, job_id: int, now: int) -> None: ...

    @abstractmethod
    async def webhook_failed(
        self, job_id: int, error: str, next_attempt: int | None, now: int
    ) -> None:
        """Count a failed attempt; `next_attempt` None gives the row up (state 'dead')."""

    @abstractmethod
    async def prune_webhooks(self, before: int) -> int:
        """Forget delivered and given-up rows created before `before`; returns how many."""

    @abstractmethod
    async def webhook_rows(self, device_id: int | None = None) -> list[dict[str, object]]:
        """Outbox rows for inspection (CLI, tests), oldest first."""
