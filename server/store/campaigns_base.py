"""Storage of campaigns (native API); SQLite: sqlite_campaigns.py, PostgreSQL: pg_campaigns.py.
Kept apart from `Store` (base.py) so each interface stays readable."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from simhive.server.core.campaign_models import (
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
