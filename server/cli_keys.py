"""`simhive-server key ...` and `quota ...`: API keys of the native API (docs/api.md), so the
first key can be made before any key exists to make one with. Works on the database of a running
server, which picks a revocation up within 2 s (keys are cached that long; bound SMPP sessions of
a revoked key are closed within as long)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from simhive.server.cli import db_option, emit, main, with_gateway
from simhive.server.core import limits
from simhive.server.core.dates import iso
from simhive.server.core.gateway import Gateway
from simhive.server.core.keys import Caller, new_smpp_password
from simhive.server.core.native import Native
from simhive.server.core.native_models import SCOPES, ApiKey

email_option = click.option("--email", required=True, help="The account the key belongs to.")


def render(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "allow_get_send": key.allow_get_send,
        "rate_per_minute": key.rate_per_minute,
        "daily_quota": key.daily_quota,
        "monthly_quota": key.monthly_quota,
        "created": iso(key.created),
        "last_used": iso(key.last_used),
        "revoked": iso(key.revoked),
        "smpp_system_id": key.smpp_system_id,
        "smpp_pool": key.smpp_pool,
    }


async def _caller(gw: Gateway, email: str) -> tuple[Native, Caller]:
    # The CLI is the operator: it holds every scope (Caller without a key).
    return Native(gw), Caller(await gw.account_by_email(email))


@main.group()
def key() -> None:
    """API keys for /api/v1: named, scoped, shown once, stored hashed."""


@key.command("create")
@db_option
@email_option
@click.option("--name", required=True, help="What the key is for, e.g. 'shop backend'.")
@click.option(
    "--scope",
    "scopes",
    type=click.Choice(SCOPES),
    multiple=True,
    required=True,
    help="Repeat for several; admin holds them all.",
)
@click.option("--allow-get-send", is_flag=True, help="May send with GET /api/v1/send (risky).")
@click.option(
    "--rate-per-minute",
    type=click.IntRange(1, limits.KEY_RATE_MAX_PER_MINUTE),
    default=limits.KEY_RATE_PER_MINUTE,
    show_default=True,
)
@click.option("--daily-quota", type=click.IntRange(min=0), default=None)
@click.option("--monthly-quota", type=click.IntRange(min=0), default=None)
@click.option(
    "--smpp",
    is_flag=True,
    help="Also an SMPP login (docs/smpp.md): prints its 8-character smpp_password once.",
)
@click.option(
    "--smpp-system-id", default=None, help="1-15 letters, digits, '.', '_', '-' [the prefix]."
)
@click.option(
    "--smpp-pool", default=None, help="Pool for its SMPP submits unless service_type names one."
)
def key_create(
    db: Path | None,
    email: str,
    name: str,
    scopes: tuple[str, ...],
    allow_get_send: bool,
    rate_per_minute: int,
    daily_quota: int | None,
    monthly_quota: int | None,
    smpp: bool,
    smpp_system_id: str | None,
    smpp_pool: str | None,
) -> None:
    """Create a key; prints it with its secret `key` (shown this once only), and with --smpp
    its `smpp_password` (also shown once)."""
    if (smpp_system_id is not None or smpp_pool is not None) and not smpp:
        raise click.UsageError("--smpp-system-id and --smpp-pool go with --smpp")
    password = new_smpp_password() if smpp else None

    async def go(gw: Gateway) -> dict[str, Any]:
        native, caller = await _caller(gw, email)
        created, secret = await native.create_key(
            caller, name, list(scopes), allow_get_send=allow_get_send,
            rate_per_minute=rate_per_minute, daily_quota=daily_quota,
            monthly_quota=monthly_quota, smpp_system_id=smpp_system_id,
            smpp_password=password, smpp_pool=smpp_pool,
        )  # fmt: skip
        shown = {"smpp_password": password} if password is not None else {}
        return {**render(created), "key": secret, **shown}

    emit(with_gateway(db, go))


@key.command("list")
@db_option
@email_option
def key_list(db: Path | None, email: str) -> None:
    """The account's keys, revoked ones included (secrets cannot be shown)."""

    async def go(gw: Gateway) -> list[dict[str, Any]]:
        native, caller = await _caller(gw, email)
        return [render(k) for k in await native.list_keys(caller)]

    emit(with_gateway(db, go))


@key.command("revoke")
@db_option
@email_option
@click.argument("key_id", type=int)
def key_revoke(db: Path | None, email: str, key_id: int) -> None:
    """Revoke a key by its id (see `key list`)."""

    async def go(gw: Gateway) -> dict[str, Any]:
        native, caller = await _caller(gw, email)
        return render(await native.revoke_key(caller, key_id))

    emit(with_gateway(db, go))


@main.group()
def quota() -> None:
    """Daily and monthly message quotas of an account (per key: `key create`)."""


@quota.command("set")
@db_option
@email_option
@click.option("--daily", type=click.IntRange(min=0), default=None, help="None: no limit.")
@click.option("--monthly", type=click.IntRange(min=0), default=None, help="None: no limit.")
def quota_set(db: Path | None, email: str, daily: int | None, monthly: int | None) -> None:
    """Set (or, without a value, remove) the account's quotas; prints its balance."""

    async def go(gw: Gateway) -> dict[str, Any]:
        from simhive.server.api.v1.render import balance

        native, caller = await _caller(gw, email)
        return balance(await native.set_account_quota(caller, daily, monthly))

    emit(with_gateway(db, go))
