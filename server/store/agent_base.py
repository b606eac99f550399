"""The storage the agent protocol and the webhook outbox need (docs/agent-protocol.md).

A separate interface from `Store` so the compat store stays readable; SqliteStore implements both
(through SqliteAgentMixin). Every method that changes state does it in one transaction, and the
webhook rows a change fires are written in that same transaction: a status change and its webhook
are durable together or not at all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.core.models import Message, Sim


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the agent tells about its modem in hello (None: not reported, keep what is stored)."""

    agent_version: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    imei: str | None = None
    serialnumber: str | None = None


@dataclass(frozen=True, slots=True)
class AgentDevice:
    """A device as the agent protocol sees it: identity, pacing settings and webhooks."""

    id: int
    account_id: int
    title: str
    enabled: bool
    delaybetweenrequest: int
    delaybetweeneachsms: int | None
    sim_min_interval: int
    sim_per_minute: int | None
    sim_per_hour: int | None
    sim_per_day: int | None
    webhook_incoming: str | None
    webhook_status: str | None
    webhook_secret: str | None
    timezone: str


@dataclass(frozen=True, slots=True)
class Part:
    index: int
    reference: int


@dataclass(frozen=True, slots=True)
class ReportEvent:
    """One validated report event: `status` is the status it asks for (6, 7, 8, 9..101)."""

    event_id: str
    sms_id: int
    type: str
    status: int
    at: int
    sim: int | None = None
    parts: tuple[Part, ...] = ()
    code: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingSms:
    key: str
    sim: int
    sender: str
    body: str
    sent_at: int | None
    received_at: int
    parts: int = 1
    incomplete: bool = False


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    at: int
    kind: str
    state: str
    reason: str = ""
    slot: int | None = None


@dataclass(frozen=True, slots=True)
class CommitAnswer:
    committed: list[int]
    rejected: list[int]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A status a report just moved a message to: what a status webhook announces."""

    message: Message
    device: AgentDevice


@dataclass(frozen=True, slots=True)
class IncomingStored:
    """A new incoming SMS just stored: what an incoming webhook announces."""

    message: Message
    device: AgentDevice
    sent_at: int | None


@dataclass(frozen=True, slots=True)
class WebhookJob:
    id: int
    device_id: int
    kind: str
    event_key: str
    url: str
    payload: str
    attempts: int
    secret: str | None


# The core renders webhook bodies; the store calls these inside the transaction that makes the
# change, so the outbox row commits with it. They must be pure (no I/O).
RenderStatus = Callable[[StatusChange], str]
RenderIncoming = Callable[[IncomingStored], str]


class AgentStore(ABC):
    # -- devices ---------------------------------------------------------------------------
    @abstractmethod
    async def agent_device(self, device_id: int) -> AgentDevice | None: ...

    @abstractmethod
    async def agent_device_by_token_hash(self, token_hash: str) -> AgentDevice | None: ...

    @abstractmethod
    async def apply_hello(
        self, device_id: int, facts: DeviceFacts, sims: Sequence[Sim], now: int
    ) -> None:
        """Store device facts, replace the SIM rows with `sims`, refresh lastseen."""

    @abstractmethod
    async def apply_status(
        self, device_id: int, sims: Sequence[Sim] | None, events: Sequence[DeviceEvent], now: int
    ) -> None:
        """Upsert the SIM rows given, append device events, refresh lastseen."""

    @abstractmethod
    async def update_device_settings(self, device_id: int, values: dict[str, object]) -> None:
        """Set columns named in AGENT_SETTING_COLUMNS; unknown names are a programming error."""

    @abstractmethod
    async def device_events(self, device_id: int, limit: int = 100) -> list[DeviceEvent]: ...

    # -- leases ----------------------------------------------------------------------------
    @abstractmethod
    async def lease_due(
        self, device_id: int, max_count: int, lease_id: str, lease_expires: int, now: int
    ) -> tuple[list[Message], int | None]:
        """Refresh lastseen, return this device's expired leases to status 1, then lease up to
        `max_count` due status-1 messages (urgent first, then due time, then id) as status 2.

        Returns the leased messages (attempt already counted) and, when none were due, the
        earliest future due time of the device's waiting messages (None if there is none)."""

    @abstractmethod
    async def commit_lease(
        self, device_id: int, lease_id: str, ids: Sequence[int], now: int
    ) -> CommitAnswer | None:
        """Status 3 for ids still in this unexpired lease; the first answer is kept and repeated.
        None if the lease does not exist or belongs to another device."""

    @abstractmethod
    async def expire_leases(self, now: int, forget_before: int) -> set[int]:
        """Return every expired uncommitted lease's messages to status 1; forget lease records
        created before `forget_before`. Returns the devices that got work back."""

    # -- outcomes and incoming ---------------------------------------------------------------
    @abstractmethod
    async def apply_report(
        self,
        device_id: int,
        events: Sequence[ReportEvent],
        now: int,
        render: RenderStatus,
    ) -> list[str]:
        """Apply each event id at most once per device; statuses never move backwards. Returns
        the ids applied now or before; events about unknown or foreign messages are left out."""

    @abstractmethod
    async def store_incoming(
        self,
        device_id: int,
        messages: Sequence[IncomingSms],
        now: int,
        render: RenderIncoming,
    ) -> list[tuple[str, int]]:
        """Store each new key as a status-5 message; a repeated key answers its first sms_id."""

    @abstractmethod
    async def message_parts(self, sms_id: int) -> list[Part]: ...

    # -- webhook outbox --------------------------------------------------------------------
    @abstractmethod
    async def due_webhooks(self, now: int, limit: int) -> list[WebhookJob]: ...

    @abstractmethod
    async def next_webhook_time(self) -> int | None:
        """The earliest next_attempt of a pending webhook."""

    @abstractmethod
    async def webhook_delivered(self, job_id: int, now: int) -> None: ...

    @abstractmethod
    async def webhook_failed(
        self, job_id: int, error: str, next_attempt: int | None, now: int
    ) -> None:
        """Count a failed attempt; next_attempt None gives up (state 'dead')."""

    @abstractmethod
    async def webhook_rows(self, device_id: int | None = None) -> list[dict[str, object]]:
        """Outbox rows for inspection (CLI, tests), oldest first."""


# Columns `update_device_settings` may set, with the CLI option that sets each.
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
