"""Overview: every device and SIM of the account at a glance, kept live over SSE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from simhive.server.console import live
from simhive.server.console.base import Ctx, ago, page
from simhive.server.console.state import CONSOLE, Console
from simhive.server.core.dates import from_us, resolve_zone, to_us
from simhive.server.core.models import Account, Device
from simhive.server.core.status import FAILURE_CODES, Status


@dataclass(frozen=True, slots=True)
class SimView:
    slot: int
    present: bool
    number: str
    operator: str
    registered: bool
    roaming: bool
    signal_dbm: int | None
    bars: int
    ready: bool | None
    reason: str
    queue: int
    sent: int
    delivered: int
    failed: int


@dataclass(frozen=True, slots=True)
class DeviceView:
    device: Device
    online: bool
    last_seen: str
    sims: list[SimView]


def bars(dbm: int | None) -> int:
    """0-4 signal bars from dBm, with the thresholds phones commonly use for GSM/LTE RSSI."""
    if dbm is None:
        return 0
    for count, floor in ((4, -73), (3, -83), (2, -93), (1, -105)):
        if dbm >= floor:
            return count
    return 0


def start_of_day(now: int, zone_name: str) -> int:
    local = from_us(now).astimezone(resolve_zone(zone_name).tz)
    midnight = datetime(local.year, local.month, local.day, tzinfo=local.tzinfo)
    return to_us(midnight)


async def device_views(console: Console, account: Account) -> list[DeviceView]:
    gw = console.gateway
    now = gw.clock()
    pairs = await gw.devices_with_sims(account)
    ids = [d.id for d, _ in pairs]
    reads = console.reads
    queue = await reads.queue_depth(account.id)
    today = await reads.counts_since(account.id, start_of_day(now, account.timezone))
    ready = await reads.sim_readiness_of(ids)
    failed_codes = {int(c) for c in FAILURE_CODES} | {int(Status.NOT_DELIVERED)}
    views = []
    for device, sims in pairs:
        sim_views = []
        for sim in sims:
            key = (device.id, sim.slot)
            counts = today.get(key, {})
            state = ready.get(key)
            sim_views.append(
                SimView(
                    slot=sim.slot,
                    present=sim.present,
                    number=sim.number,
                    operator=sim.operator or sim.carrier,
                    registered=sim.registered,
                    roaming=sim.roaming,
                    signal_dbm=sim.signal_dbm,
                    bars=bars(sim.signal_dbm),
                    ready=state[0] if state else None,
                    reason=state[1] if state else "",
                    queue=queue.get(key, 0),
                    # "sent" counts every message that left, whatever its report said since.
                    sent=sum(n for s, n in counts.items() if s in (6, 7, 8)),
                    delivered=counts.get(Status.DELIVERED, 0),
                    failed=sum(n for s, n in counts.items() if s in failed_codes),
                )
            )
        views.append(
            DeviceView(device, gw.is_online(device, now), ago(device.lastseen, now), sim_views)
        )
    return views


async def fragment(console: Console, account: Account) -> str:
    views = await device_views(console, account)
    return console.env.get_template("overview_devices.html").render(devices=views, url=console.url)


@page
async def overview(ctx: Ctx) -> web.StreamResponse:
    views = await device_views(ctx.console, ctx.account)
    return ctx.render("overview.html", devices=views, nav="overview")


async def overview_live(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    return await live.stream(request, "overview", lambda account: fragment(console, account))
