"""Devices through the native API: create (the token once, plus an enrollment code and the exact
`simhive-agent enroll` command) and update (name, pacing, webhooks, pool seats). Both need the
`devices` scope; a device of another account is not found."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from simhive.server.core.enrollment import Enrollment
from simhive.server.core.errors import InvalidInput
from simhive.server.core.gateway import Gateway
from simhive.server.core.keys import Caller
from simhive.server.core.native import DeviceView
from simhive.server.core.webhooks import validate_url

# Pacing per SIM, by the names the device profile shows them with, and the setting each sets
# (`simhive-server device set` changes the same ones; the agent gets them at its next hello).
PACING: dict[str, tuple[str, int, int, bool]] = {  # name: (column, min, max, may be null)
    "min_interval_seconds": ("sim_min_interval", 0, 86_400, False),
    "per_minute": ("sim_per_minute", 0, 1_000_000, True),
    "per_hour": ("sim_per_hour", 0, 1_000_000, True),
    "per_day": ("sim_per_day", 0, 1_000_000, True),
}


@dataclass(frozen=True, slots=True)
class NewDevice:
    view: DeviceView
    token: str
    code: str
    expires: int


@dataclass(frozen=True, slots=True)
class PoolSeat:
    pool: str
    sim: int
    weight: int = 1


@dataclass(frozen=True, slots=True)
class DeviceChanges:
    name: str | None = None
    pacing: dict[str, int | None] | None = None
    webhook_status: str | None = None  # "" removes it
    webhook_incoming: str | None = None
    new_webhook_secret: bool = False
    pools: list[PoolSeat] | None = None  # the device's seats in named pools, all of them


class DeviceAdmin:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.store = gw.store
        self.enrollment = Enrollment(gw.store, gw.clock)

    async def create(self, caller: Caller, name: str) -> NewDevice:
        caller.require("devices")
        device, token = await self.gw.create_device(caller.account, name)
        code, expires = await self.enrollment.issue(caller.account.id, device.id, token)
        return NewDevice(DeviceView(device, [], False), token, code, expires)

    async def update(self, caller: Caller, device_id: int, ch: DeviceChanges) -> str | None:
        """Apply the changes; returns a webhook secret made now (shown once), else None."""
        caller.require("devices")
        account = caller.account
        device = await self.gw.device_of(account, device_id, fresh=True)
        values: dict[str, object] = {}
        for key, value in (ch.pacing or {}).items():
            column, low, high, nullable = PACING[key]
            if value is None and not nullable:
                raise InvalidInput(f"pacing.{key}: a number", details={"field": f"pacing.{key}"})
            if value is not None and not low <= value <= high:
                raise InvalidInput(f"pacing.{key}: {low} to {high}",
                                   details={"field": f"pacing.{key}"})  # fmt: skip
            values[column] = value
        for column, url in (("webhook_status", ch.webhook_status),
                            ("webhook_incoming", ch.webhook_incoming)):  # fmt: skip
            if url is not None:
                values[column] = validate_url(url) or None
        name = None
        if ch.name is not None:
            name = ch.name.strip()
            if not name or len(name) > 200:
                raise InvalidInput("name: 1 to 200 characters", details={"field": "name"})
        if ch.pools is not None:
            await self._check_seats(caller, ch.pools)
        current = await self.store.device_agent_settings(device.id)
        shown = None
        wants_url = any(values.get(c) for c in ("webhook_status", "webhook_incoming"))
        if ch.new_webhook_secret or (wants_url and current is not None
                                     and not current.webhook_secret):  # fmt: skip
            shown = values["webhook_secret"] = secrets.token_hex(32)
        if name is not None:
            await self.store.rename_device(device.id, name)
        await self.store.update_device_settings(device.id, values)
        if ch.pools is not None:
            await self._seat(caller, device.id, ch.pools)
        return shown

    async def _check_seats(self, caller: Caller, seats: list[PoolSeat]) -> None:
        seen = set()
        for seat in seats:
            pool = await self.gw.routing.pool(caller.account, seat.pool)
            if pool.kind != "named":
                raise InvalidInput(f"pools: {seat.pool!r} is implicit (its SIMs are given)",
                                   details={"field": "pools"})  # fmt: skip
            if (seat.pool, seat.sim) in seen:
                raise InvalidInput(f"pools: {seat.pool} SIM {seat.sim} twice",
                                   details={"field": "pools"})  # fmt: skip
            seen.add((seat.pool, seat.sim))

    async def _seat(self, caller: Caller, device_id: int, seats: list[PoolSeat]) -> None:
        """The device's SIMs sit in exactly these named pools afterwards."""
        routing, account = self.gw.routing, caller.account
        wanted = {(s.pool, s.sim): s.weight for s in seats}
        for pool in await routing.list(account):
            if pool.kind != "named":
                continue
            for member in await self.store.pool_sims(pool.id):
                if member.device_id == device_id and (pool.name, member.slot) not in wanted:
                    await routing.remove_sim(account, pool.name, device_id, member.slot)
        for (pool_name, sim), weight in wanted.items():
            await routing.add_sim(account, pool_name, device_id, sim, weight)
