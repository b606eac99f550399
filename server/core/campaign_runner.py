"""Hands campaign recipients to the queue, a window at a time (a small background job).

Each tick starts the scheduled campaigns that are due and, for every running one, sends its next
recipients through the Sender (as POST /api/v1/messages would: target, priority, validity,
quotas) so that at most `window` of its messages wait unsent at once. A paused campaign is
simply skipped, so it holds back everything not yet handed over. A campaign with nothing left
to hand over and nothing waiting is finished. A quota that refuses a batch pauses the campaign
with the reason; a template or pool deleted meanwhile does too.

One runner per database: two would hand the same recipients over twice. The server runs one;
making background jobs single-run across several servers is the store's job (not here yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from simhive.server.core.campaign_models import PAUSED, RUNNING, Campaign
from simhive.server.core.dates import now_us
from simhive.server.core.errors import GatewayError, InvalidInput
from simhive.server.core.keys import Caller
from simhive.server.core.sending import Sender, SendRequest
from simhive.server.store.base import Store, StoreError

log = logging.getLogger("simhive.campaigns")
WINDOW = 200  # messages of one campaign waiting unsent at most


class CampaignRunner:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        *,
        interval_seconds: float = 1.0,
        window: int = WINDOW,
        clock: Callable[[], int] = now_us,
    ) -> None:
        self.store = store
        self.sender = sender
        self.interval_seconds = interval_seconds
        self.window = window
        self.clock = clock
        self._wake = asyncio.Event()
        # One tick at a time in this process (its loop, a test, an admin command): two feeds of
        # one campaign at once would hand the same recipients over twice.
        self._lock = asyncio.Lock()

    def wake(self) -> None:
        self._wake.set()

    async def tick(self) -> int:
        """One round over the campaigns; returns how many recipients were handed over."""
        handed = 0
        async with self._lock:
            for campaign in await self.store.campaigns_to_run(self.clock()):
                handed += await self._feed(campaign)
        return handed

    async def _feed(self, c: Campaign) -> int:
        inflight = len(await self.store.campaign_inflight(c.id))
        room = self.window - inflight
        if room <= 0:
            return 0
        batch = await self.store.campaign_batch(c.id, room)
        if not batch:
            if inflight == 0 and await self.store.finish_campaign(c.id, self.clock()):
                log.info("campaign %d finished", c.id)
            return 0
        caller = await self._caller(c)
        if caller is None:
            return 0
        req = SendRequest(
            to=[r.number for r in batch],
            text=c.text,
            template_id=c.template_id,
            variables=c.variables,
            per_recipient=[r.variables for r in batch],
            pool=c.pool,
            device_id=c.device_id,
            sim=c.sim,
            priority=c.priority,
            validity_minutes=c.validity_minutes,
        )
        try:
            result = await self.sender.send(caller, req)
        except InvalidInput as exc:
            rejected = exc.details.get("rejected")
            if not isinstance(rejected, list) or len(rejected) != len(batch):
                await self._pause(c, exc)
                return 0
            await self.store.record_released(
                c.id,
                [(r.index, None, str(x["code"])) for r, x in zip(batch, rejected, strict=True)],
            )
            return 0
        except GatewayError as exc:  # a quota, a pool or template gone: wait for the owner
            await self._pause(c, exc)
            return 0
        await self.store.record_released(
            c.id,
            [(r.index, x.id, x.error_code) for r, x in zip(batch, result.results, strict=True)],
        )
        return result.accepted

    async def _caller(self, c: Campaign) -> Caller | None:
        account = await self.store.account_by_id(c.account_id)
        if account is None:
            return None
        keys = [k for k in await self.store.list_api_keys(c.account_id) if k.id == c.key_id]
        key = keys[0] if keys and keys[0].revoked is None else None
        return Caller(account, key)  # a revoked key's campaign counts on the account only

    async def _pause(self, c: Campaign, exc: GatewayError) -> None:
        log.warning("campaign %d paused: %s", c.id, exc.message)
        with contextlib.suppress(GatewayError):
            await self.store.set_campaign_state(
                c.account_id, c.id, (RUNNING,), PAUSED, self.clock(), reason=exc.message
            )

    async def run(self) -> None:
        while True:
            try:
                handed = await self.tick()
            except StoreError as exc:
                log.error("campaign tick failed: %s", exc)
                handed = 0
            except Exception:  # a bug must not end campaigns for the life of the server
                log.exception("campaign tick failed")
                handed = 0
            if handed:
                continue  # more may fit at once (the window of another campaign)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_seconds)
