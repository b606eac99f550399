"""Campaigns: a named send of one text (or a template) to contact groups and/or a list of
numbers, now or at a set time, that can be paused, resumed and cancelled, with statistics as
Onfon's Campaign/Statistics gives them. Writing needs the `send` scope, reading `read`.

Creating one checks everything a send would (the text or template, the target, the schedule)
and judges each recipient once: a number that cannot be read, or a template variable the
recipient lacks, is refused then and counted as failed; a number in two groups is sent once.
The campaign runner (campaign_runner.py) then hands recipients to the queue a window at a time,
through the same Sender as POST /api/v1/messages (quotas included), so a paused campaign holds
the rest back. Statistics count the campaign's messages by status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from simhive.server.core import limits, numbers
from simhive.server.core.campaign_models import (
    CANCELLED,
    PAUSED,
    RUNNING,
    SCHEDULED,
    Campaign,
    CampaignCounts,
    CampaignRecipient,
    NewCampaign,
)
from simhive.server.core.dates import US
from simhive.server.core.errors import Conflict, GatewayError, InvalidInput, NotFound
from simhive.server.core.gateway import Gateway
from simhive.server.core.groups import Groups
from simhive.server.core.keys import Caller
from simhive.server.core.pools import ACCOUNT_POOL
from simhive.server.core.sending import PRIORITIES, parse_schedule
from simhive.server.core.templates import render


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    name: str
    group_ids: Sequence[int] = ()
    to: Sequence[str] = ()
    per_recipient: Sequence[Mapping[str, str]] | None = None  # aligned with `to`
    text: str | None = None
    template_id: int | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    pool: str | None = None
    device_id: int | None = None
    sim: int | None = None
    send_at: str | None = None
    priority: str = "normal"
    validity_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class CampaignStats:
    campaign: Campaign
    counts: CampaignCounts
    sent: int  # left a SIM: unknown + delivered + not_delivered
    delivery_rate: float | None  # delivered / sent, None before anything was sent
    duration_seconds: float | None  # started -> finished (or now while it runs)


class Campaigns:
    def __init__(self, gw: Gateway, groups: Groups) -> None:
        self.gw = gw
        self.store = gw.store
        self.clock: Callable[[], int] = gw.clock
        self.groups = groups
        self.wake: Callable[[], None] = lambda: None  # the runner's, once it runs

    async def create(self, caller: Caller, spec: CampaignSpec) -> Campaign:
        caller.require("send")
        account = caller.account
        now = self.clock()
        name = spec.name.strip()
        if not name or len(name) > limits.MAX_TITLE_CHARS:
            raise InvalidInput(f"Invalid campaign name: 1 to {limits.MAX_TITLE_CHARS} characters",
                               details={"field": "name"})  # fmt: skip
        body = await self._body(caller, spec)
        if spec.priority not in PRIORITIES:
            raise InvalidInput(f"priority: one of {', '.join(PRIORITIES)}")
        if spec.validity_minutes is not None and not (
            1 <= spec.validity_minutes <= limits.MAX_VALIDITY_MINUTES
        ):
            raise InvalidInput(f"validity_minutes: 1 to {limits.MAX_VALIDITY_MINUTES}",
                               details={"field": "validity_minutes"})  # fmt: skip
        send_at = parse_schedule(spec.send_at, now)
        pool = spec.pool if spec.pool is not None or spec.device_id is not None else ACCOUNT_POOL
        await self.gw.target(account, device_id=spec.device_id, sim=spec.sim, pool=pool)
        wanted: list[tuple[str, dict[str, str]]] = []
        for index, raw in enumerate(spec.to):
            own = spec.per_recipient[index] if spec.per_recipient is not None else {}
            wanted.append((raw, dict(own)))
        for group_id in dict.fromkeys(spec.group_ids):  # group_not_found for another's
            for contact in await self.groups.recipients(caller, group_id):
                # a contact's name fills {name}, as in a send to the group
                wanted.append((contact.phone, {"name": contact.name} if contact.name else {}))
        if not wanted:
            raise InvalidInput("No recipients: give groups, to or recipients",
                               code="invalid_numbers", details={"field": "to"})  # fmt: skip
        if len(wanted) > limits.MAX_API_RECIPIENTS:
            raise InvalidInput(
                f"Too many recipients: {len(wanted)} (at most {limits.MAX_API_RECIPIENTS})",
                code="too_many_numbers",
                details={"limit": limits.MAX_API_RECIPIENTS},
            )
        good: list[CampaignRecipient] = []
        refused: list[tuple[CampaignRecipient, str]] = []
        seen: set[str] = set()
        for raw, own in wanted:
            index = len(good) + len(refused)
            try:
                number = numbers.normalise(raw)
            except GatewayError:
                refused.append((CampaignRecipient(index, raw[:64], own), "invalid_numbers"))
                continue
            if number in seen:
                continue
            seen.add(number)
            recipient = CampaignRecipient(index, number, own)
            if spec.template_id is not None:
                try:
                    text = render(body, {**spec.variables, **own})
                except GatewayError as exc:
                    refused.append((recipient, exc.code))
                    continue
                if not text or len(text) > limits.MAX_BODY_CHARS:
                    refused.append((recipient, "invalid_input"))
                    continue
            good.append(recipient)
        if not good:
            codes = sorted({code for _, code in refused})
            raise InvalidInput(
                f"All {len(refused)} recipient(s) refused; nothing was stored",
                code=codes[0] if codes else "invalid_numbers",
                details={"rejected": [{"to": r.number, "code": c} for r, c in refused[:100]]},
            )
        campaign = await self.store.create_campaign(
            NewCampaign(
                account_id=account.id,
                key_id=caller.key_id,
                name=name,
                text=spec.text,
                template_id=spec.template_id,
                variables=dict(spec.variables),
                pool=spec.pool,
                device_id=spec.device_id,
                sim=spec.sim,
                priority=spec.priority,
                validity_minutes=spec.validity_minutes,
                send_at=send_at,
                group_ids=tuple(dict.fromkeys(spec.group_ids)),
            ),
            good,
            refused,
            now,
        )
        if send_at is None or send_at <= now:
            self.wake()
        return campaign

    async def _body(self, caller: Caller, spec: CampaignSpec) -> str:
        if (spec.text is None) == (spec.template_id is None):
            raise InvalidInput("Give either text or template_id", details={"field": "text"})
        if spec.template_id is not None:
            found = await self.store.template_by_id(caller.account.id, spec.template_id)
            if found is None:
                raise NotFound("Template not found", details={"field": "template_id"})
            return found.body
        assert spec.text is not None
        if not spec.text or len(spec.text) > limits.MAX_BODY_CHARS:
            raise InvalidInput(f"text: 1 to {limits.MAX_BODY_CHARS} characters",
                               details={"field": "text"})  # fmt: skip
        return spec.text

    async def list_campaigns(self, caller: Caller, created_from: int | None,
                   created_to: int | None) -> list[Campaign]:  # fmt: skip
        caller.require("read")
        return await self.store.list_campaigns(caller.account.id, created_from, created_to)

    async def get(self, caller: Caller, campaign_id: int) -> Campaign:
        caller.require("read")
        return await self._get(caller, campaign_id)

    async def _get(self, caller: Caller, campaign_id: int) -> Campaign:
        found = await self.store.campaign_by_id(caller.account.id, campaign_id)
        if found is None:
            raise NotFound("Campaign not found")
        return found

    async def stats(self, caller: Caller, campaign_id: int) -> CampaignStats:
        caller.require("read")
        campaign = await self._get(caller, campaign_id)
        counts = await self.store.campaign_counts(campaign.id)
        sent = counts.unknown + counts.delivered + counts.not_delivered
        duration = None
        if campaign.started is not None:
            end = campaign.finished if campaign.finished is not None else self.clock()
            duration = max(end - campaign.started, 0) / US
        return CampaignStats(campaign, counts, sent,
                             counts.delivered / sent if sent else None, duration)  # fmt: skip

    async def pause(self, caller: Caller, campaign_id: int) -> Campaign:
        caller.require("send")
        return await self.store.set_campaign_state(
            caller.account.id, campaign_id, (SCHEDULED, RUNNING), PAUSED, self.clock()
        )

    async def resume(self, caller: Caller, campaign_id: int) -> Campaign:
        caller.require("send")
        current = await self._get(caller, campaign_id)
        state = RUNNING if current.started is not None else SCHEDULED
        campaign = await self.store.set_campaign_state(
            caller.account.id, campaign_id, (PAUSED,), state, self.clock()
        )
        self.wake()
        return campaign

    async def cancel(self, caller: Caller, campaign_id: int) -> Campaign:
        """Recipients not yet handed over are dropped; its messages no agent has committed to
        are cancelled (status 20); those in an agent's journal still go out."""
        caller.require("send")
        campaign = await self.store.set_campaign_state(
            caller.account.id, campaign_id, (SCHEDULED, RUNNING, PAUSED), CANCELLED, self.clock()
        )
        for sms_id in await self.store.campaign_inflight(campaign.id):
            try:
                device_id = await self.store.cancel_message(caller.account.id, sms_id,
                                                            self.clock())  # fmt: skip
            except (Conflict, NotFound):  # sent or committed meanwhile: it goes its way
                continue
            if device_id is not None:
                self.gw.notifier.notify(device_id)
        return campaign
