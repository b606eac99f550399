"""`simhive-server pool ...`: SIM pools (docs/routing.md) until the native API covers them.

Works on the database of a running server: it picks a change up within a couple of seconds
(pools are cached that long). Every command names the account by its email.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from simhive.server.cli import db_option, emit, main, with_gateway
from simhive.server.core.dates import iso
from simhive.server.core.gateway import Gateway
from simhive.server.core.pools import MAX_WEIGHT, STRATEGIES, Pool
from simhive.server.core.routing import PoolInfo

email_option = click.option("--email", required=True, help="The account the pool belongs to.")
name_argument = click.argument("name")
strategy_choice = click.Choice(STRATEGIES)


def _sim_option(f: Any) -> Any:
    f = click.option("--device", "device_id", type=int, required=True, help="Device id.")(f)
    return click.option(
        "--sim", "slot", type=click.IntRange(0, 1), required=True, help="0 = SIM 1, 1 = SIM 2."
    )(f)


def render(pool: Pool) -> dict[str, Any]:
    return {
        "name": pool.name,
        "kind": pool.kind,
        "strategy": pool.strategy,
        "sticky": pool.sticky,
        "cycle": pool.cycle,
        "created": iso(pool.created),
    }


def render_info(info: PoolInfo) -> dict[str, Any]:
    return {
        **render(info.pool),
        "waiting": info.waiting,
        "sims": [
            {"device_id": s.device_id, "sim": s.slot, "weight": s.weight, "used_this_cycle": s.used}
            for s in info.sims
        ],
    }


@main.group()
def pool() -> None:
    """SIM pools: a message sent to a pool leaves on the best SIM at send time.

    Every account has the pool `all` (all its SIMs) and every device the pool `device:<id>`
    (its own SIMs); create more with `pool create`."""


@pool.command("create")
@db_option
@email_option
@name_argument
@click.option("--strategy", type=strategy_choice, default="partial", show_default=True)
@click.option(
    "--sticky/--no-sticky",
    default=False,
    show_default=True,
    help="A recipient keeps the SIM that last texted them while it is healthy.",
)
def pool_create(db: Path | None, email: str, name: str, strategy: str, sticky: bool) -> None:
    """Create a named pool (add SIMs with `pool add-sim`)."""

    async def go(gw: Gateway) -> dict[str, Any]:
        account = await gw.account_by_email(email)
        return render(await gw.routing.create(account, name, strategy, sticky))

    emit(with_gateway(db, go))


@pool.command("list")
@db_option
@email_option
def pool_list(db: Path | None, email: str) -> None:
    """List the account's pools (implicit ones appear once they were used or set)."""

    async def go(gw: Gateway) -> list[dict[str, Any]]:
        account = await gw.account_by_email(email)
        return [render(p) for p in await gw.routing.list(account)]

    emit(with_gateway(db, go))


@pool.command("show")
@db_option
@email_option
@name_argument
def pool_show(db: Path | None, email: str, name: str) -> None:
    """A pool with its SIMs, weights, rotation counters and waiting messages."""

    async def go(gw: Gateway) -> dict[str, Any]:
        account = await gw.account_by_email(email)
        return render_info(await gw.routing.info(account, name))

    emit(with_gateway(db, go))


@pool.command("set")
@db_option
@email_option
@name_argument
@click.option("--strategy", type=strategy_choice, default=None)
@click.option("--sticky/--no-sticky", default=None)
def pool_set(
    db: Path | None, email: str, name: str, strategy: str | None, sticky: bool | None
) -> None:
    """Change a pool's strategy (starts a new cycle) or stickiness; also for `all` and
    `device:<id>`."""
    if strategy is None and sticky is None:
        raise click.UsageError("nothing to change: give --strategy and/or --sticky/--no-sticky")

    async def go(gw: Gateway) -> dict[str, Any]:
        account = await gw.account_by_email(email)
        return render(await gw.routing.update(account, name, strategy=strategy, sticky=sticky))

    emit(with_gateway(db, go))


@pool.command("add-sim")
@db_option
@email_option
@name_argument
@_sim_option
@click.option(
    "--weight",
    type=click.IntRange(1, MAX_WEIGHT),
    default=1,
    show_default=True,
    help="full: turns per cycle; least-loaded: room multiplier; partial: share.",
)
def pool_add_sim(
    db: Path | None, email: str, name: str, device_id: int, slot: int, weight: int
) -> None:
    """Add a SIM to a named pool, or change its weight."""

    async def go(gw: Gateway) -> dict[str, Any]:
        account = await gw.account_by_email(email)
        await gw.routing.add_sim(account, name, device_id, slot, weight)
        return render_info(await gw.routing.info(account, name))

    emit(with_gateway(db, go))


@pool.command("remove-sim")
@db_option
@email_option
@name_argument
@_sim_option
def pool_remove_sim(db: Path | None, email: str, name: str, device_id: int, slot: int) -> None:
    """Take a SIM out of a named pool (messages it already took still leave on it)."""

    async def go(gw: Gateway) -> dict[str, Any]:
        account = await gw.account_by_email(email)
        await gw.routing.remove_sim(account, name, device_id, slot)
        return render_info(await gw.routing.info(account, name))

    emit(with_gateway(db, go))


@pool.command("delete")
@db_option
@email_option
@name_argument
def pool_delete(db: Path | None, email: str, name: str) -> None:
    """Delete a named pool; refused while any of its messages is not sent yet."""

    async def go(gw: Gateway) -> dict[str, Any]:
        account = await gw.account_by_email(email)
        await gw.routing.delete(account, name)
        return {"deleted": name}

    emit(with_gateway(db, go))
