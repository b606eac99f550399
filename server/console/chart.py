"""Traffic: messages sent and delivered per hour and SIM over the last 24 hours, as SVG drawn on the
server (no chart library in the browser); each chart has the same figures as a table."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from simhive.server.console.base import Ctx, local_time, page

HOURS = 24
HOUR_US = 3600 * 1_000_000
WIDTH = 720
HEIGHT = 140
TOP = 10
BOTTOM = 24  # room for the hour labels
LEFT = 36  # room for the scale


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    sent_y: float
    sent_h: float
    delivered_y: float
    delivered_h: float
    label: str
    sent: int
    delivered: int


@dataclass(frozen=True, slots=True)
class SimChart:
    device_id: int
    title: str
    slot: int
    peak: int
    bars: list[Bar]
    sent: int
    delivered: int


def scale_top(peak: int) -> int:
    """A round number at or above the peak, so the scale reads 5, 10, 20, 50, ..."""
    top = 1
    while top < peak:
        top = _next_round(top)
    return top


def _next_round(value: int) -> int:
    """1 -> 2 -> 5 -> 10 -> 20 -> 50 -> 100 ..."""
    digits = len(str(value)) - 1
    lead = value // 10**digits
    return int({1: 2, 2: 5}.get(lead, 10) * 10**digits)


def layout(
    counts: dict[int, tuple[int, int]], first_hour: int, labels: list[str]
) -> tuple[int, list[Bar]]:
    """Bars for hours first_hour .. first_hour + HOURS - 1 from {hour: (sent, delivered)}."""
    peak = scale_top(max((s for s, _ in counts.values()), default=0))
    plot_w = WIDTH - LEFT
    plot_h = HEIGHT - TOP - BOTTOM
    slot_w = plot_w / HOURS
    bars = []
    for i in range(HOURS):
        sent, delivered = counts.get(first_hour + i, (0, 0))
        sent_h = plot_h * sent / peak
        delivered_h = plot_h * delivered / peak
        base = TOP + plot_h
        bars.append(
            Bar(
                LEFT + i * slot_w + 2,
                slot_w - 4,
                base - sent_h,
                sent_h,
                base - delivered_h,
                delivered_h,
                labels[i],
                sent,
                delivered,
            )  # fmt: skip
        )
    return peak, bars


async def charts(ctx: Ctx) -> list[SimChart]:
    gw = ctx.console.gateway
    now = gw.clock()
    first_hour = now // HOUR_US - HOURS + 1
    rows = await ctx.console.reads.hourly(ctx.account.id, first_hour * HOUR_US)
    labels = [local_time((first_hour + i) * HOUR_US, ctx.account.timezone)[11:13]
              for i in range(HOURS)]  # fmt: skip
    per_sim: dict[tuple[int, int], dict[int, tuple[int, int]]] = {}
    for r in rows:
        per_sim.setdefault((r.device_id, r.slot), {})[r.hour] = (r.sent, r.delivered)
    out = []
    for device, sims in await gw.devices_with_sims(ctx.account):
        slots = sorted({s.slot for s in sims} | {k[1] for k in per_sim if k[0] == device.id})
        for slot in slots:
            counts = per_sim.get((device.id, slot), {})
            peak, bars = layout(counts, first_hour, labels)
            out.append(SimChart(device.id, device.title, slot, peak, bars,
                                sum(s for s, _ in counts.values()),
                                sum(d for _, d in counts.values())))  # fmt: skip
    return out


@page
async def traffic(ctx: Ctx) -> web.StreamResponse:
    return ctx.render("traffic.html", nav="traffic", charts=await charts(ctx), width=WIDTH,
                      height=HEIGHT, top=TOP, bottom=BOTTOM, left=LEFT)  # fmt: skip
