"""Routes of /api/v1 that change devices: create (with an enrollment code) and update; routes.py
adds them to ROUTES. Scopes are checked by the core (server/core/device_admin.py)."""

from __future__ import annotations

from typing import Any

from simhive.server.api.v1 import render
from simhive.server.api.v1.declare import Ctx, Route
from simhive.server.api.v1.render import _obj, _time
from simhive.server.api.v1.schema import Arr, Bool, Int, Obj, Schema, Str
from simhive.server.core import enrollment, limits
from simhive.server.core.dates import iso
from simhive.server.core.device_admin import PACING, DeviceAdmin, DeviceChanges, PoolSeat
from simhive.server.core.keys import Caller
from simhive.server.core.pools import MAX_WEIGHT
from simhive.server.core.webhooks import MAX_URL_CHARS

ID = Int(minimum=1, maximum=2**62, description="A record id.")
NAME = Str(min_len=1, max_len=limits.MAX_TITLE_CHARS)

CREATE_BODY = Obj(fields={"name": NAME}, required=("name",))
ENROLLMENT = _obj(
    {
        "code": Str(description="Single use; swap it with `simhive-agent enroll`."),
        "expires": _time("", nullable=False),
        "command": Str(description="The exact command to run on the agent's host."),
    }
)
NEW_DEVICE = _obj(
    {
        **render.DEVICE.fields,
        "token": Str(description="The device token: shown this once only."),
        "enrollment": ENROLLMENT,
    }
)


def _enroll_command(ctx: Ctx, code: str) -> str:
    # The base URL as this client reached the server (behind a proxy: the proxy's own URL).
    return enrollment.command(str(ctx.request.url.origin()), code)


async def create_device(ctx: Ctx, a: dict[str, Any]) -> Any:
    made = await DeviceAdmin(ctx.native.gw).create(ctx.caller, a["name"])
    return {
        **render.device(made.view),
        "token": made.token,
        "enrollment": {
            "code": made.code,
            "expires": iso(made.expires),
            "command": _enroll_command(ctx, made.code),
        },  # fmt: skip
    }


def _cap(name: str) -> Schema:
    _, low, high, nullable = PACING[name]
    return Int(minimum=low, maximum=high, nullable=nullable)


URL = Str(max_len=MAX_URL_CHARS, description='http(s) URL; "" removes the webhook.')
UPDATE_BODY = Obj(
    fields={
        "name": NAME,
        "pacing": Obj(fields={k: _cap(k) for k in PACING},
                      description="Per SIM; null: no cap. The agent applies them at its next"
                                  " hello."),
        "webhooks": Obj(fields={"status": URL, "incoming": URL,
                                "new_secret": Bool(description="Make a new signing secret.")}),
        "pools": Arr(
            items=Obj(fields={"pool": Str(min_len=1, max_len=60), "sim": Int(minimum=0, maximum=1),
                              "weight": Int(minimum=1, maximum=MAX_WEIGHT)},
                      required=("pool", "sim")),
            max_items=200,
            description="Every named pool seat of the device's SIMs (others are removed).",
        ),
    }
)  # fmt: skip
UPDATED = _obj(
    {
        **render.PROFILE.fields,
        "webhooks": _obj(
            {
                "status": Str(nullable=True),
                "incoming": Str(nullable=True),
                "secret_set": Bool(),
                "secret": Str(nullable=True, description="A secret made now: shown once."),
            }
        ),
    }
)


async def update_device(ctx: Ctx, a: dict[str, Any]) -> Any:
    hooks = a.get("webhooks", {})
    pools = a.get("pools")
    changes = DeviceChanges(
        name=a.get("name"),
        pacing=a.get("pacing"),
        webhook_status=hooks.get("status"),
        webhook_incoming=hooks.get("incoming"),
        new_webhook_secret=hooks.get("new_secret", False),
        pools=None if pools is None
        else [PoolSeat(p["pool"], p["sim"], p.get("weight", 1)) for p in pools],
    )  # fmt: skip
    secret = await DeviceAdmin(ctx.native.gw).update(ctx.caller, a["id"], changes)
    # The answer shows what the change made: the `devices` scope covers it, `read` is not asked.
    profile = await ctx.native.device(Caller(ctx.caller.account), a["id"])
    settings = profile.settings
    return {
        **render.profile(profile),
        "webhooks": {
            "status": settings.webhook_status if settings else None,
            "incoming": settings.webhook_incoming if settings else None,
            "secret_set": bool(settings and settings.webhook_secret),
            "secret": secret,
        },
    }


DEVICE_ROUTES: tuple[Route, ...] = (
    Route("POST", "/devices", "createDevice",
          "Create a device: its token once, and a code for `simhive-agent enroll`.", "devices",
          "devices", create_device, NEW_DEVICE, 201, body=CREATE_BODY,
          links={op: {"id": "$response.body#/id"} for op in ("getDevice", "updateDevice")}),
    Route("PATCH", "/devices/{id}", "updateDevice",
          "Change a device's name, pacing, webhooks or pool seats.", "devices", "devices",
          update_device, UPDATED, params={"id": ID}, body=UPDATE_BODY, owned=True),
)  # fmt: skip
