"""Storage of campaigns (native API); SQLite: sqlite_campaigns.py, PostgreSQL: pg_campaigns.py.
Kept apart from `Store` (base.py) so each interface stays readable."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any

from simhive.server.core.campaign_models import (
    CANCELLED,
    Campaign,
    CampaignCounts,
    CampaignRecipient,
    NewCampaign,
)


class CampaignStore(ABC):
    @abstractmethod
    async def create_campaign(
        self,
        campaign: NewCampaign,
        recipients: Sequence[CampaignRecipient],
        refused: Sequence[tuple[CampaignRecipient, str]],
        now: int,
    ) -> Campaign:
        """Store the campaign (state scheduled) with its recipients; `refused` ones are kept
        with their error code and never sent. AlreadyExists if the name is taken."""

    @abstractmethod
    async def campaign_by_id(self, account_id: int, campaign_id: int) -> Campaign | None: ...

    @abstractmethod
    async def list_campaigns(
        self, account_id: int, created_from: int | None, created_to: int | None
    ) -> list[Campaign]:
        """Newest first."""

    @abstractmethod
    async def set_campaign_state(
        self,
        account_id: int,
        campaign_id: int,
        allowed: Sequence[str],
        state: str,
        now: int,
        reason: str | None = None,
    ) -> Campaign:
        """Move it to `state` if it is in one of `allowed` (one statement: two callers cannot
        both move it); Conflict naming its state otherwise, NotFound if not the account's."""

    @abstractmethod
    async def campaigns_to_run(self, now: int) -> list[Campaign]:
        """Start scheduled campaigns that are due (running, started now), then return every
        running campaign."""

    @abstractmethod
    async def campaign_batch(self, campaign_id: int, limit: int) -> list[CampaignRecipient]:
        """Recipients not yet handed over, by index."""

    @abstractmethod
    async def campaign_inflight(self, campaign_id: int) -> list[int]:
        """Ids of its messages not yet sent (status 1-3)."""

    @abstractmethod
    async def record_released(
        self, campaign_id: int, results: Sequence[tuple[int, int | None, str | None]]
    ) -> None:
        """(recipient index, message id, error code): what handing them over gave."""

    @abstractmethod
    async def finish_campaign(self, campaign_id: int, now: int) -> bool:
        """running -> finished; False if it was no longer running."""

    @abstractmethod
    async def campaign_counts(self, campaign_id: int) -> CampaignCounts: ...


def counts_of(row: Iterable[Any] | None) -> CampaignCounts:
    """The row of either engine's campaign_counts query: (state, pending, queued, unknown,
    delivered, not delivered, failed, cancelled, last change); sums over no rows are NULL."""
    state, pending, queued, unknown, delivered, undelivered, failed, cancelled, last = (
        tuple(row) if row else (None, 0, 0, 0, 0, 0, 0, 0, None)
    )
    pending = int(pending or 0)
    cancelled = int(cancelled or 0)
    if state == CANCELLED:  # never handed over: cancelled with it
        cancelled, pending = cancelled + pending, 0
    return CampaignCounts(
        pending=pending,
        queued=int(queued or 0),
        unknown=int(unknown or 0),
        delivered=int(delivered or 0),
        not_delivered=int(undelivered or 0),
        failed=int(failed or 0),
        cancelled=cancelled,
        last_change=None if last is None else int(last),
    )
