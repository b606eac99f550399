"""Storage of account webhooks (native API): URLs and secret, the durable outbox, and the device
connection state the watcher announces; SQLite: sqlite_account_webhooks.py;
PostgreSQL: pg_account_webhooks.py."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from simhive.server.core.models import Device


@dataclass(frozen=True, slots=True)
class AccountHooks:
    status: str | None
    incoming: str | None
    device: str | None
    secret: str | None


@dataclass(frozen=True, slots=True)
class AccountJob:
    """A due outbox row: message rows name their message (`sms_id`), device rows carry `body`."""

    id: int
    account_id: int
    kind: str
    event_key: str
    url: str
    sms_id: int | None
    status: int | None
    body: str | None
    attempts: int
    secret: str | None


class AccountWebhookStore(ABC):
    @abstractmethod
    async def account_webhooks(self, account_id: int) -> AccountHooks | None: ...

    @abstractmethod
    async def set_account_webhooks(
        self, account_id: int, hooks: AccountHooks, now: int
    ) -> None: ...

    @abstractmethod
    async def due_account_webhooks(self, now: int, limit: int) -> list[AccountJob]:
        """Pending rows due now, oldest first; a message's rows in order (one waits while an
        older row of its message is pending)."""

    @abstractmethod
    async def account_webhook_done(self, job_id: int, now: int) -> None: ...

    @abstractmethod
    async def account_webhook_failed(
        self, job_id: int, error: str, next_attempt: int | None, now: int
    ) -> None:
        """Count a failed attempt; `next_attempt` None gives the row up (state dead)."""

    @abstractmethod
    async def prune_account_webhooks(self, before: int) -> int:
        """Forget delivered and given-up rows created before `before`; returns how many."""

    @abstractmethod
    async def account_webhook_rows(self, account_id: int) -> list[dict[str, object]]:
        """The account's outbox rows, oldest first (inspection, tests)."""

    @abstractmethod
    async def watched_devices(self) -> list[tuple[Device, bool | None, str]]:
        """Devices of accounts with a device-status URL: (device, the connection state last
        announced or None, the URL)."""

    @abstractmethod
    async def record_connection(
        self, device: Device, connected: bool, now: int, url: str | None, body: str | None
    ) -> None:
        """Store the device's connection state and, with a URL, its outbox row (one
        transaction)."""
