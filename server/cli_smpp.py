"""`simhive-server smpp-credential ...`: credentials SMPP clients bind with (docs/smpp.md).

Works on the database of a running server; a new or deleted credential counts from the next bind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from simhive.server.cli import db_option, emit, main, with_gateway
from simhive.server.core.dates import iso
from simhive.server.core.gateway import Gateway
from simhive.server.smpp.credentials import create_credential
from simhive.server.store.smpp_store import SmppStore, smpp_store


def _smpp_store(gw: Gateway) -> SmppStore:
    return smpp_store(gw.store)


@main.group("smpp-credential")
def smpp_credential() -> None:
    """SMPP credentials: a system_id and an 8-character password per SMPP client."""


@smpp_credential.command("create")
@db_option
@click.option("--email", required=True, help="The account the credential sends for.")
@click.option("--system-id", required=True, help="1-15 letters, digits, '.', '_' or '-'.")
@click.option(
    "--pool", default=None, help="Pool for its messages unless service_type names one [all]."
)
def credential_create(db: Path | None, email: str, system_id: str, pool: str | None) -> None:
    """Create a credential; prints its password (shown once, stored hashed)."""

    async def go(gw: Gateway) -> dict[str, Any]:
        account = await gw.account_by_email(email)
        password = await create_credential(gw, _smpp_store(gw), account, system_id, pool)
        return {"system_id": system_id, "password": password, "account_id": account.id,
                "pool": pool or "all"}  # fmt: skip

    emit(with_gateway(db, go))


@smpp_credential.command("list")
@db_option
@click.option("--email", default=None, help="Only this account's credentials.")
def credential_list(db: Path | None, email: str | None) -> None:
    """List credentials (passwords are stored hashed and cannot be shown)."""

    async def go(gw: Gateway) -> list[dict[str, Any]]:
        account_id = (await gw.account_by_email(email)).id if email else None
        return [
            {
                "system_id": c.system_id,
                "account_id": c.account_id,
                "pool": c.pool or "all",
                "created": iso(c.created),
            }  # fmt: skip
            for c in await _smpp_store(gw).credentials(account_id)
        ]

    emit(with_gateway(db, go))


@smpp_credential.command("delete")
@db_option
@click.argument("system_id")
def credential_delete(db: Path | None, system_id: str) -> None:
    """Delete a credential; sessions bound with it stay bound until they unbind."""

    async def go(gw: Gateway) -> dict[str, Any]:
        if not await _smpp_store(gw).delete_credential(system_id):
            raise click.ClickException(f"no SMPP credential {system_id}")
        return {"deleted": system_id}

    emit(with_gateway(db, go))
