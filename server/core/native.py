"""The native API's use cases, for every door that speaks it (the /api/v1 handlers, the console).

Each use case takes a Caller and checks its scope first: the rule sits here, so every door
enforces the same one. Records of other accounts are reported as missing (not_found), never as
forbidden, so ids of other accounts cannot be probed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simhive.server.core import limits, numbers
from simhive.server.core.campaigns import Campaigns
from simhive.server.core.dates import US
from simhive.server.core.errors import InvalidInput, NotFound
from simhive.server.core.gateway import Gateway
from simhive.server.core.keys import Caller, Keys
from simhive.server.core.models import Device, Message, Sim
from simhive.server.core.native_models import (
    ApiKey,
    MessageQuery,
    PartReport,
    SimLoad,
    StatusChange,
)
from simhive.server.core.pools import Pool
from simhive.server.core.quotas import period_keys
from simhive.server.core.routing import PoolInfo
from simhive.server.core.sending import Sender
from simhive.server.core.templates import Templates
from simhive.server.store.agent_base import DeviceAgentSettings


@dataclass(frozen=True, slots=True)
class MessageView:
    message: Message
    history: list[StatusChange]
    parts: list[PartReport]
    valid_until: int | None
    waiting: str | None


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class QuotaView:
    limit: int | None
    used: int
    resets_at: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)


@dataclass(frozen=True, slots=True)
class Balance:
    account: dict[str, QuotaView]
    key: dict[str, QuotaView] | None


@dataclass(frozen=True, slots=True)
class DeviceView:
    device: Device
    sims: list[Sim]
    online: bool


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    view: DeviceView
    settings: DeviceAgentSettings | None
    loads: dict[int, SimLoad]
    readiness: dict[int, tuple[bool, str] | None]
    day_start: int


@dataclass(frozen=True, slots=True)
class MessageFilters:
    status: int | None = None
    device_id: int | None = None
    sim: int | None = None
    pool: str | None = None
    number: str | None = None
    created_from: int | None = None
    created_to: int | None = None
    cursor: str | None = None
    limit: int = limits.DEFAULT_API_PAGE


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"m:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "m" or not value.isdigit() or len(value) > 18:
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("Invalid cursor", details={"field": "cursor"}) from None


def _period_ends(now: int) -> tuple[int, int]:
    """(start of the next UTC day, start of the next UTC month)."""
    t = datetime.fromtimestamp(now / US, UTC)
    day = datetime(t.year, t.month, t.day, tzinfo=UTC) + timedelta(days=1)
    month = datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=UTC)
    return int(day.timestamp()) * US, int(month.timestamp()) * US


class Native:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.store = gw.store
        self.clock: Callable[[], int] = gw.clock
        self.keys = Keys(gw.store, gw.clock)
        self.sender = Sender(gw)
        self.templates = Templates(gw.store, gw.clock)
        self.groups = self.sender.groups
        self.campaigns = Campaigns(gw, self.groups)

    # -- keys ------------------------------------------------------------------------------
    async def create_key(
        self,
        caller: Caller,
        name: str,
        scopes: list[str],
        *,
        allow_get_send: bool = False,
        rate_per_minute: int = limits.KEY_RATE_PER_MINUTE,
        daily_quota: int | None = None,
        monthly_quota: int | None = None,
        smpp_system_id: str | None = None,
        smpp_password: str | None = None,
        smpp_pool: str | None = None,
    ) -> tuple[ApiKey, str]:
        caller.require("admin")
        if smpp_pool is not None:
            await self.gw.routing.pool_for_send(caller.account, smpp_pool)  # NotFound if unknown
        return await self.keys.create(
            caller.account,
            name,
            scopes,
            allow_get_send=allow_get_send,
            rate_per_minute=rate_per_minute,
            daily_quota=daily_quota,
            monthly_quota=monthly_quota,
            smpp_system_id=smpp_system_id,
            smpp_password=smpp_password,
            smpp_pool=smpp_pool,
        )

    async def list_keys(self, caller: Caller) -> list[ApiKey]:
        caller.require("admin")
        return await self.keys.list(caller.account)

    async def revoke_key(self, caller: Caller, key_id: int) -> ApiKey:
        caller.require("admin")
        return await self.keys.revoke(caller.account, key_id)

    # -- messages --------------------------------------------------------------------------
    async def message(self, caller: Caller, sms_id: int, direction: str = "out") -> MessageView:
        caller.require("read")
        m = await self.store.message_by_id(caller.account.id, sms_id)
        if m is None or m.direction != direction:
            raise NotFound("Message not found" if direction == "out" else "Incoming SMS not found")
        return MessageView(
            m,
            await self.store.message_history(m.id),
            await self.store.message_parts(m.id),
            await self.store.valid_until(m.id),
            await self.gw.waiting_reason(m),
        )

    async def messages(self, caller: Caller, f: MessageFilters, direction: str = "out") -> Page:
        caller.require("read")
        if not 1 <= f.limit <= limits.MAX_API_PAGE:
            raise InvalidInput(f"limit: 1 to {limits.MAX_API_PAGE}", details={"field": "limit"})
        pool_id = None
        if f.pool is not None:
            pool_id = (await self.gw.routing.pool(caller.account, f.pool)).id
        q = MessageQuery(
            account_id=caller.account.id,
            direction=direction,
            status=f.status,
            device_id=f.device_id,
            sim=f.sim,
            pool_id=pool_id,
            number=numbers.normalise(f.number) if f.number is not None else None,
            created_from=f.created_from,
            created_to=f.created_to,
            before=decode_cursor(f.cursor) if f.cursor is not None else None,
            limit=f.limit + 1,  # one more tells whether a next page exists
        )
        rows = await self.store.query_messages(q)
        more = len(rows) > f.limit
        rows = rows[: f.limit]
        return Page(rows, encode_cursor(rows[-1].id) if more and rows else None)

    async def cancel(self, caller: Caller, sms_id: int) -> MessageView:
        caller.require("send")
        device_id = await self.store.cancel_message(caller.account.id, sms_id, self.clock())
        if device_id is not None:
            self.gw.notifier.notify(device_id)  # its agent's lease lost a message
        return await self.message(Caller(caller.account), sms_id)

    # -- quotas ----------------------------------------------------------------------------
    async def balance(self, caller: Caller) -> Balance:
        caller.require("read")
        now = self.clock()
        day, month = period_keys(now)
        day_end, month_end = _period_ends(now)
        account_id = caller.account.id
        daily, monthly = await self.store.account_quota(account_id)
        used = await self.store.quota_used(account_id, 0, (day, month))
        account = {
            "daily": QuotaView(daily, used[0], day_end),
            "monthly": QuotaView(monthly, used[1], month_end),
        }
        key = None
        if caller.key is not None:
            k = caller.key
            used = await self.store.quota_used(account_id, k.id, (day, month))
            key = {
                "daily": QuotaView(k.daily_quota, used[0], day_end),
                "monthly": QuotaView(k.monthly_quota, used[1], month_end),
            }
        return Balance(account, key)

    async def set_account_quota(
        self, caller: Caller, daily: int | None, monthly: int | None
    ) -> Balance:
        caller.require("admin")
        for field, value in (("daily", daily), ("monthly", monthly)):
            if value is not None and value < 0:
                raise InvalidInput(f"{field}: 0 or more", details={"field": field})
        await self.store.set_account_quota(caller.account.id, daily, monthly)
        return await self.balance(caller)

    # -- devices ---------------------------------------------------------------------------
    async def devices(self, caller: Caller) -> list[DeviceView]:
        caller.require("read")
        now = self.clock()
        return [
            DeviceView(d, sims, self.gw.is_online(d, now))
            for d, sims in await self.gw.devices_with_sims(caller.account)
        ]

    async def device(self, caller: Caller, device_id: int) -> DeviceProfile:
        caller.require("read")
        device = await self.gw.device_of(caller.account, device_id, fresh=True)
        sims = (await self.store.sims_of([device.id])).get(device.id, [])
        now = self.clock()
        day_start = now - now % (86_400 * US)
        loads = {load.slot: load for load in await self.store.sim_loads(device.id, day_start)}
        slots = sorted({s.slot for s in sims} | set(loads))
        return DeviceProfile(
            DeviceView(device, sims, self.gw.is_online(device, now)),
            await self.store.device_agent_settings(device.id),
            loads,
            {slot: await self.store.sim_readiness(device.id, slot) for slot in slots},
            day_start,
        )

    # -- pools -----------------------------------------------------------------------------
    async def pools(self, caller: Caller) -> list[Pool]:
        caller.require("read")
        return await self.gw.routing.list(caller.account)

    async def pool(self, caller: Caller, name: str) -> PoolInfo:
        caller.require("read")
        return await self.gw.routing.info(caller.account, name)

    async def create_pool(self, caller: Caller, name: str, strategy: str, sticky: bool) -> PoolInfo:
        caller.require("devices")
        pool = await self.gw.routing.create(caller.account, name, strategy, sticky)
        return await self.gw.routing.info(caller.account, pool.name)

    async def update_pool(
        self, caller: Caller, name: str, strategy: str | None, sticky: bool | None
    ) -> PoolInfo:
        caller.require("devices")
        await self.gw.routing.update(caller.account, name, strategy=strategy, sticky=sticky)
        return await self.gw.routing.info(caller.account, name)

    async def delete_pool(self, caller: Caller, name: str) -> None:
        caller.require("devices")
        await self.gw.routing.delete(caller.account, name)

    async def set_pool_sim(
        self, caller: Caller, name: str, device_id: int, slot: int, weight: int
    ) -> PoolInfo:
        caller.require("devices")
        await self.gw.routing.add_sim(caller.account, name, device_id, slot, weight)
        return await self.gw.routing.info(caller.account, name)

    async def remove_pool_sim(
        self, caller: Caller, name: str, device_id: int, slot: int
    ) -> PoolInfo:
        caller.require("devices")
        await self.gw.routing.remove_sim(caller.account, name, device_id, slot)
        return await self.gw.routing.info(caller.account, name)
