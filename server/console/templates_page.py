"""Templates: message texts with `{variable}` placeholders (docs/api.md), listed, created,
edited and deleted through the same use cases as /api/v1/templates (server/core/templates.py)."""

from __future__ import annotations

from aiohttp import web

from simhive.server.console.base import Ctx, page
from simhive.server.console.content_base import caller, native, path_id
from simhive.server.core import limits
from simhive.server.core.errors import GatewayError

MISSING = "Template not found"


async def _list(ctx: Ctx, status: int = 200, error: str | None = None) -> web.Response:
    found = await native(ctx).templates.list(caller(ctx))
    return ctx.render("templates.html", status=status, nav="templates", templates=found,
                      error=error, max_body=limits.MAX_BODY_CHARS,
                      values={k: ctx.field(k) for k in ("name", "body")})  # fmt: skip


@page
async def templates(ctx: Ctx) -> web.StreamResponse:
    return await _list(ctx)


@page
async def create(ctx: Ctx) -> web.StreamResponse:
    try:
        made = await native(ctx).templates.create(
            caller(ctx), ctx.field("name"), str(ctx.form.get("body", ""))
        )
    except GatewayError as exc:
        return await _list(ctx, 400, exc.message)
    ctx.flash(f"Template {made.name} created.")
    raise ctx.redirect("/templates")


@page
async def edit(ctx: Ctx) -> web.StreamResponse:
    found = await native(ctx).templates.get(caller(ctx), path_id(ctx, "template_id", MISSING))
    return ctx.render("template.html", nav="templates", tpl=found, error=None,
                      max_body=limits.MAX_BODY_CHARS,
                      values={"name": found.name, "body": found.body})  # fmt: skip


@page
async def update(ctx: Ctx) -> web.StreamResponse:
    templates = native(ctx).templates
    template_id = path_id(ctx, "template_id", MISSING)
    try:
        saved = await templates.update(
            caller(ctx), template_id, ctx.field("name"), str(ctx.form.get("body", ""))
        )
    except GatewayError as exc:
        found = await templates.get(caller(ctx), template_id)  # another's: not found
        return ctx.render("template.html", status=400, nav="templates", tpl=found,
                          error=exc.message, max_body=limits.MAX_BODY_CHARS,
                          values={"name": ctx.field("name"),
                                  "body": str(ctx.form.get("body", ""))})  # fmt: skip
    ctx.flash(f"Template {saved.name} saved.")
    raise ctx.redirect("/templates")


@page
async def delete(ctx: Ctx) -> web.StreamResponse:
    templates = native(ctx).templates
    found = await templates.get(caller(ctx), path_id(ctx, "template_id", MISSING))
    await templates.delete(caller(ctx), found.id)
    ctx.flash(f"Template {found.name} deleted.")
    raise ctx.redirect("/templates")
