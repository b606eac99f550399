"""Pools: the account's SIM pools, their strategy, members and waiting messages (docs/routing.md).
Every change goes through Routing, the same calls as `simhive-server pool ...`."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from simhive.server.console.base import Ctx, int_field, page
from simhive.server.core.pools import STRATEGIES


@page
async def pools(ctx: Ctx) -> web.StreamResponse:
    routing = ctx.console.gateway.routing
    infos = [await routing.info(ctx.account, "all")]
    for pool in await routing.list(ctx.account):
        if pool.kind == "named":
            infos.append(await routing.info(ctx.account, pool.name))
    pairs = await ctx.console.gateway.devices_with_sims(ctx.account)
    sims = [(d, s.slot) for d, device_sims in pairs for s in device_sims]
    return ctx.render("pools.html", nav="pools", infos=infos, strategies=STRATEGIES, sims=sims)


def _name(ctx: Ctx) -> str:
    return ctx.request.match_info["name"]


@page
async def create(ctx: Ctx) -> web.StreamResponse:
    pool = await ctx.console.gateway.routing.create(
        ctx.account, ctx.field("name"), ctx.field("strategy") or "partial",
        ctx.field("sticky") == "on",
    )  # fmt: skip
    ctx.flash(f"Pool {pool.name} created.")
    raise ctx.redirect("/pools")


@page
async def update(ctx: Ctx) -> web.StreamResponse:
    name = _name(ctx)
    await ctx.console.gateway.routing.update(
        ctx.account, name, strategy=ctx.field("strategy"), sticky=ctx.field("sticky") == "on"
    )
    ctx.flash(f"Pool {name} updated.")
    raise ctx.redirect("/pools")


def _sim(ctx: Ctx) -> tuple[int, int]:
    device_text, _, slot_text = ctx.field("sim").partition(":")
    device_id = int_field(device_text, "SIM")
    slot = int_field(slot_text, "SIM")
    assert device_id is not None and slot is not None
    return device_id, slot


@page
async def add_sim(ctx: Ctx) -> web.StreamResponse:
    name = _name(ctx)
    device_id, slot = _sim(ctx)
    weight = int_field(ctx.field("weight") or "1", "weight")
    assert weight is not None
    await ctx.console.gateway.routing.add_sim(ctx.account, name, device_id, slot, weight)
    ctx.flash(f"SIM {slot + 1} of device {device_id} is in pool {name} (weight {weight}).")
    raise ctx.redirect("/pools")


@page
async def remove_sim(ctx: Ctx) -> web.StreamResponse:
    name = _name(ctx)
    device_id, slot = _sim(ctx)
    await ctx.console.gateway.routing.remove_sim(ctx.account, name, device_id, slot)
    ctx.flash(f"SIM {slot + 1} of device {device_id} left pool {name}.")
    raise ctx.redirect("/pools")


@page
async def delete(ctx: Ctx) -> web.StreamResponse:
    name = _name(ctx)
    await ctx.console.gateway.routing.delete(ctx.account, name)
    ctx.flash(f"Pool {name} deleted.")
    raise ctx.redirect("/pools")


def pool_path(name: str) -> str:
    return "/pools/" + quote(name, safe="")
