"""Routes of /api/v1 for the account's webhooks (server/core/account_webhooks.py); routes.py
adds them to ROUTES."""

from __future__ import annotations

from typing import Any

from simhive.server.api.v1.declare import Ctx, Route
from simhive.server.api.v1.render import _obj
from simhive.server.api.v1.schema import Bool, Obj, Str
from simhive.server.core.account_webhooks import AccountWebhooks, HooksView
from simhive.server.core.webhooks import MAX_URL_CHARS

URL = Str(max_len=MAX_URL_CHARS, nullable=True, description='http(s) URL; "" or null removes it.')
HOOKS = _obj(
    {
        "status": Str(nullable=True, description="Message status changes (6-12, 20, 21, ...)."),
        "incoming": Str(nullable=True, description="Incoming SMS."),
        "device": Str(nullable=True, description="Devices connecting and disconnecting."),
        "secret_set": Bool(),
        "secret": Str(nullable=True, description="A signing secret made now: shown once."),
    }
)
BODY = Obj(fields={"status": URL, "incoming": URL, "device": URL,
                   "new_secret": Bool(description="Make a new signing secret.")})  # fmt: skip


def _hooks(v: HooksView) -> dict[str, Any]:
    h = v.hooks
    return {"status": h.status if h else None, "incoming": h.incoming if h else None,
            "device": h.device if h else None, "secret_set": bool(h and h.secret),
            "secret": v.new_secret}  # fmt: skip


def _use(ctx: Ctx) -> AccountWebhooks:
    return AccountWebhooks(ctx.native.store, ctx.native.clock)


async def get_hooks(ctx: Ctx, a: dict[str, Any]) -> Any:
    return _hooks(await _use(ctx).get(ctx.caller))


async def set_hooks(ctx: Ctx, a: dict[str, Any]) -> Any:
    urls: dict[str, str | None] = {k: a[k] for k in ("status", "incoming", "device") if k in a}
    return _hooks(await _use(ctx).set(ctx.caller, urls, a.get("new_secret", False)))


WEBHOOK_ROUTES: tuple[Route, ...] = (
    Route("GET", "/webhooks", "getWebhooks", "The account's webhook URLs.", "webhooks",
          "admin", get_hooks, HOOKS),
    Route("PUT", "/webhooks", "setWebhooks",
          "Set the account's webhook URLs (message status, incoming SMS, device status).",
          "webhooks", "admin", set_hooks, HOOKS, body=BODY),
)  # fmt: skip
