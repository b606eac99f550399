"""`simhive-server account delete` and `device delete`: gone for good, so only with --yes.

Without --yes nothing is deleted: the command says what would go and exits with status 1. What
a delete takes along is the store's rule (server/store/sqlite_delete.py, docs/configuration.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from simhive.server.cli import account, db_option, device, emit, with_gateway
from simhive.server.core.errors import NotFound
from simhive.server.core.gateway import Gateway

yes_option = click.option("--yes", is_flag=True, help="Really delete (without it: only say what).")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _messages(counts: dict[str, int]) -> str:
    return (
        f"{_plural(counts['messages'], 'message')} ({counts['unsent_messages']} not sent yet"
        + (f", {counts['incoming_messages']} received" if "incoming_messages" in counts else "")
        + ")"
    )


def _refuse(what: str) -> click.ClickException:
    return click.ClickException(f"nothing deleted: this would delete {what}; add --yes to do so")


@device.command("delete")
@db_option
@click.option("--device-id", type=int, required=True)
@yes_option
def device_delete(db: Path | None, device_id: int, yes: bool) -> None:
    """Delete a device with its SIMs and all its messages (sent, received and unsent); shared
    pool messages it had taken but not committed go back to their pool. Its token stops working."""

    async def go(gw: Gateway) -> dict[str, Any]:
        dev = await gw.store.device_by_id(device_id)
        owner = await gw.store.account_by_id(dev.account_id) if dev else None
        if dev is None or owner is None:
            raise NotFound(f"No device {device_id}")
        counts = await gw.delete_device(owner, device_id, dry_run=not yes)
        if not yes:
            back = counts["messages_back_to_pool"]
            raise _refuse(
                f"device {device_id} ({dev.title}) of {owner.email} with "
                f"{_plural(counts['sims'], 'SIM')} and {_messages(counts)}"
                + (f"; {back} taken pool messages would go back to their pool" if back else "")
            )
        return {"deleted": {"device_id": device_id, "title": dev.title, **counts}}

    emit(with_gateway(db, go))


@account.command("delete")
@db_option
@click.option("--email", required=True)
@yes_option
def account_delete(db: Path | None, email: str, yes: bool) -> None:
    """Delete an account with its tokens, devices, pools, tags, contacts and all messages."""

    async def go(gw: Gateway) -> dict[str, Any]:
        acc = await gw.account_by_email(email)
        counts = await gw.delete_account(acc, dry_run=not yes)
        if not yes:
            raise _refuse(
                f"account {acc.email} with {_plural(counts['devices'], 'device')}, "
                f"{_messages(counts)}, {_plural(counts['pools'], 'pool')}, "
                f"{_plural(counts['tags'], 'tag')} and {_plural(counts['contacts'], 'contact')}"
            )
        return {"deleted": {"account_id": acc.id, "email": acc.email, **counts}}

    emit(with_gateway(db, go))
