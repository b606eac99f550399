"""`simhive-server device set`, `device webhooks`, `device events` and `device show`: a device's
agent settings, webhooks, the status events its agent reported and its SIMs (prepaid balance
included).

Registered on the `device` group by server/cli.py. Works on the database of a running server: the
agent picks settings up at its next hello, the webhook sender reads URLs and secret per delivery.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import click

from simhive.server.cli import db_option, device, emit, with_gateway
from simhive.server.core.dates import iso
from simhive.server.core.errors import GatewayError
from simhive.server.core.gateway import Gateway
from simhive.server.core.models import Sim
from simhive.server.core.webhooks import validate_url


class _CapType(click.ParamType[Any]):
    """A non-negative integer, or `none` for no cap."""

    name = "N|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text in ("none", "null", "off"):
            return _NONE
        try:
            number = int(text)
        except ValueError:
            self.fail(f"expected a whole number or 'none', got {value!r}", param, ctx)
        if not 0 <= number <= 1_000_000:
            self.fail(f"out of range (0 to 1000000): {number}", param, ctx)
        return number


_NONE = object()  # "set to NULL", distinct from "option not given" (None)
CAP = _CapType()


@device.command("set")
@db_option
@click.option("--device-id", type=int, required=True)
@click.option(
    "--webhook-status",
    default=None,
    metavar="URL",
    help="POST target for sent-SMS status changes (6, 7, 8, 9-12, 100, 101); '' removes it.",
)
@click.option(
    "--webhook-incoming",
    default=None,
    metavar="URL",
    help="POST target for incoming SMS; '' removes it.",
)
@click.option(
    "--webhook-secret",
    default=None,
    help="HMAC-SHA256 signing secret (at least 16 characters). Without it, setting a URL on a "
    "device with no secret generates one (printed once).",
)
@click.option("--new-webhook-secret", is_flag=True, help="Generate a new signing secret.")
@click.option(
    "--delaybetweenrequest",
    type=click.IntRange(1, 3600),
    default=None,
    help="Seconds between polls of an agent that cannot long-poll.",
)
@click.option(
    "--delaybetweeneachsms",
    type=CAP,
    default=None,
    help="Random 0..N s pause between two sends on one SIM; 'none' for no pause.",
)
@click.option(
    "--sim-min-interval",
    type=click.IntRange(0, 86_400),
    default=None,
    help="Minimum seconds between two submits on one SIM [default 10].",
)
@click.option("--sim-per-minute", type=CAP, default=None, help="Cap per SIM [default 6].")
@click.option("--sim-per-hour", type=CAP, default=None, help="Cap per SIM [default 100].")
@click.option("--sim-per-day", type=CAP, default=None, help="Cap per SIM [default 500].")
def device_set(
    db: Path | None,
    device_id: int,
    webhook_status: str | None,
    webhook_incoming: str | None,
    webhook_secret: str | None,
    new_webhook_secret: bool,
    delaybetweenrequest: int | None,
    delaybetweeneachsms: Any,
    sim_min_interval: int | None,
    sim_per_minute: Any,
    sim_per_hour: Any,
    sim_per_day: Any,
) -> None:
    """Change a device's agent settings and webhooks; prints the resulting settings.

    Agents receive the pacing settings in their next hello (on start and on every reconnect).
    """
    if webhook_secret is not None and new_webhook_secret:
        raise click.UsageError("give --webhook-secret or --new-webhook-secret, not both")
    if webhook_secret is not None and len(webhook_secret) < 16:
        raise click.BadParameter("at least 16 characters", param_hint="--webhook-secret")
    values: dict[str, object] = {}
    try:
        for column, url in (
            ("webhook_status", webhook_status),
            ("webhook_incoming", webhook_incoming),
        ):
            if url is not None:
                values[column] = validate_url(url) or None
    except GatewayError as exc:
        raise click.BadParameter(exc.message) from None
    for column, value in (
        ("delaybetweenrequest", delaybetweenrequest),
        ("delaybetweeneachsms", delaybetweeneachsms),
        ("sim_min_interval", sim_min_interval),
        ("sim_per_minute", sim_per_minute),
        ("sim_per_hour", sim_per_hour),
        ("sim_per_day", sim_per_day),
    ):
        if value is not None:
            values[column] = None if value is _NONE else value

    async def go(gw: Gateway) -> dict[str, Any]:
        current = await gw.store.device_agent_settings(device_id)
        if current is None:
            raise click.ClickException(f"no device {device_id}")
        shown_secret = None
        wants_url = any(values.get(c) for c in ("webhook_status", "webhook_incoming"))
        if webhook_secret is not None:
            values["webhook_secret"] = webhook_secret
        elif new_webhook_secret or (wants_url and not current.webhook_secret):
            shown_secret = secrets.token_hex(32)
            values["webhook_secret"] = shown_secret
        await gw.store.update_device_settings(device_id, values)
        after = await gw.store.device_agent_settings(device_id)
        assert after is not None
        out: dict[str, Any] = {
            "device_id": device_id,
            "delaybetweenrequest": after.delaybetweenrequest,
            "delaybetweeneachsms": after.delaybetweeneachsms,
            "sim_min_interval": after.sim_min_interval,
            "sim_per_minute": after.sim_per_minute,
            "sim_per_hour": after.sim_per_hour,
            "sim_per_day": after.sim_per_day,
            "webhook_status": after.webhook_status,
            "webhook_incoming": after.webhook_incoming,
            "webhook_secret_set": after.webhook_secret is not None,
        }
        if shown_secret is not None:
            out["webhook_secret"] = shown_secret  # shown once: the receiver needs it
        return out

    emit(with_gateway(db, go))


@device.command("webhooks")
@db_option
@click.option("--device-id", type=int, default=None, help="Only this device's webhooks.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
def device_webhooks(db: Path | None, device_id: int | None, limit: int) -> None:
    """Show the webhook outbox (newest last): state, attempts, last error."""

    async def go(gw: Gateway) -> list[dict[str, Any]]:
        rows = await gw.store.webhook_rows(device_id)
        return [
            {
                **{k: v for k, v in row.items() if k not in ("next_attempt", "created")},
                "created": iso(row["created"]) if isinstance(row["created"], int) else None,
                "next_attempt": (
                    iso(row["next_attempt"]) if isinstance(row["next_attempt"], int) else None
                ),
                "delivered_at": (
                    iso(row["delivered_at"]) if isinstance(row["delivered_at"], int) else None
                ),
            }
            for row in rows[-limit:]
        ]

    emit(with_gateway(db, go))


@device.command("events")
@db_option
@click.option("--device-id", type=int, required=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def device_events(db: Path | None, device_id: int, limit: int) -> None:
    """Show the device's modem and SIM status events, as its agent reported them (oldest first)."""

    async def go(gw: Gateway) -> list[dict[str, Any]]:
        if await gw.store.device_by_id(device_id) is None:
            raise click.ClickException(f"no device {device_id}")
        return [
            {"at": iso(e.at), "kind": e.kind, "state": e.state, "reason": e.reason, "slot": e.slot}
            for e in await gw.store.device_events(device_id, limit)
        ]

    emit(with_gateway(db, go))


def _sim_view(s: Sim) -> dict[str, Any]:
    b = s.balance
    balance = None
    if b is not None:
        balance = {"text": b.text, "amount": b.amount, "currency": b.currency, "low": b.low,
                   "checked_at": iso(b.checked_at)}  # fmt: skip
    return {
        "slot": s.slot, "present": s.present, "active": s.active, "iccid": s.iccid,
        "number": s.number, "operator": s.carrier or s.operator, "registered": s.registered,
        "roaming": s.roaming, "signal_dbm": s.signal_dbm, "updated": iso(s.updated),
        "balance": balance,
    }  # fmt: skip


@device.command("show")
@db_option
@click.option("--device-id", type=int, required=True)
def device_show(db: Path | None, device_id: int) -> None:
    """Show a device and its SIMs as its agent last reported them, prepaid balance included."""

    async def go(gw: Gateway) -> dict[str, Any]:
        d = await gw.store.device_by_id(device_id)
        if d is None:
            raise click.ClickException(f"no device {device_id}")
        sims = (await gw.store.sims_of([device_id])).get(device_id, [])
        return {
            "device_id": d.id, "account_id": d.account_id, "title": d.title,
            "lastseen": iso(d.lastseen), "imei": d.imei, "model": d.model,
            "appversion": d.appversion, "sims": [_sim_view(s) for s in sims],
        }  # fmt: skip

    emit(with_gateway(db, go))
