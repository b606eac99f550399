"""`simhive-server device delete`: the admin's door to deleting a device without a one-time code
(the native API needs one sent to the account's verified phone; docs/api.md). Registered on the
`device` group by server/cli.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from simhive.server.cli import db_option, device, emit, with_gateway
from simhive.server.core.confirmed import Confirmed
from simhive.server.core.errors import NotFound
from simhive.server.core.gateway import Gateway
from simhive.server.core.sending import Sender


@device.command("delete")
@db_option
@click.option("--device-id", type=int, required=True)
def device_delete(db: Path | None, device_id: int) -> None:
    """Delete a device: its token stops working, its SIMs leave every pool, its pinned messages
    not yet taken are cancelled (status 20). Its sent messages keep their history."""

    async def go(gw: Gateway) -> dict[str, Any]:
        found = await gw.store.device_by_id(device_id)
        if found is None or found.deleted is not None:
            raise NotFound(f"No device {device_id}")
        cancelled = await Confirmed(gw, Sender(gw)).delete_unconfirmed(device_id)
        return {"deleted": device_id, "cancelled_messages": len(cancelled)}

    emit(with_gateway(db, go))
