"""Groups: contact groups to send to, through the same use cases as /api/v1/groups
(server/core/groups.py): create, rename, delete, contacts added or removed one by one, and a
CSV file imported with the API's own parser (a header line naming a `phone` column, optionally
`name`)."""

from __future__ import annotations

from aiohttp import web

from simhive.server.console.base import Ctx, page
from simhive.server.console.content_base import caller, native, path_id
from simhive.server.core.errors import GatewayError, InvalidInput
from simhive.server.core.native_models import Group

MISSING = "Group not found"
PAGE = 100  # contacts per page of a group
SHOWN_REJECTS = 5  # refused CSV lines named in the note; the rest are counted


async def _list(ctx: Ctx, status: int = 200, error: str | None = None) -> web.Response:
    found = await native(ctx).groups.all(caller(ctx))
    return ctx.render("groups.html", status=status, nav="groups", groups=found, error=error,
                      values={"name": ctx.field("name")})  # fmt: skip


@page
async def groups(ctx: Ctx) -> web.StreamResponse:
    return await _list(ctx)


@page
async def create(ctx: Ctx) -> web.StreamResponse:
    try:
        made = await native(ctx).groups.create(caller(ctx), ctx.field("name"))
    except GatewayError as exc:
        return await _list(ctx, 400, exc.message)
    ctx.flash(f"Group {made.name} created.")
    raise ctx.redirect(f"/groups/{made.id}")


async def _group(ctx: Ctx) -> Group:
    return await native(ctx).groups.get(caller(ctx), path_id(ctx, "group_id", MISSING))


async def _detail(ctx: Ctx, group: Group, status: int = 200,
                  error: str | None = None) -> web.Response:  # fmt: skip
    after_text = ctx.request.query.get("after", "")
    after = int(after_text) if after_text.isascii() and after_text.isdigit() else 0
    after = min(after, 2**62)
    rows = await native(ctx).groups.contacts(caller(ctx), group.id, after, PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    return ctx.render("group.html", status=status, nav="groups", group=group, contacts=rows,
                      next_after=rows[-1].id if more and rows else None, error=error,
                      values={k: ctx.field(k) for k in ("phone", "contact_name")})  # fmt: skip


@page
async def detail(ctx: Ctx) -> web.StreamResponse:
    return await _detail(ctx, await _group(ctx))


@page
async def rename(ctx: Ctx) -> web.StreamResponse:
    group = await _group(ctx)
    try:
        group = await native(ctx).groups.rename(caller(ctx), group.id, ctx.field("name"))
    except GatewayError as exc:
        return await _detail(ctx, group, 400, exc.message)
    ctx.flash(f"Group renamed to {group.name}.")
    raise ctx.redirect(f"/groups/{group.id}")


@page
async def delete(ctx: Ctx) -> web.StreamResponse:
    group = await _group(ctx)
    await native(ctx).groups.delete(caller(ctx), group.id)
    ctx.flash(f"Group {group.name} and its {group.contacts} contact(s) deleted.")
    raise ctx.redirect("/groups")


@page
async def add_contact(ctx: Ctx) -> web.StreamResponse:
    group = await _group(ctx)
    try:
        contact = await native(ctx).groups.add(
            caller(ctx), group.id, ctx.field("phone"), ctx.field("contact_name") or None
        )
    except GatewayError as exc:
        return await _detail(ctx, group, 400, exc.message)
    ctx.flash(f"{contact.phone} added.")
    raise ctx.redirect(f"/groups/{group.id}")


@page
async def remove_contact(ctx: Ctx) -> web.StreamResponse:
    group = await _group(ctx)
    contact_id = path_id(ctx, "contact_id", "Contact not found")
    await native(ctx).groups.remove(caller(ctx), group.id, contact_id)
    ctx.flash("Contact removed.")
    raise ctx.redirect(f"/groups/{group.id}")


def _csv_text(ctx: Ctx) -> str:
    """The uploaded file's text (UTF-8, a BOM allowed), or the pasted text."""
    upload = ctx.form.get("file")
    data = getattr(upload, "file", None)
    if data is not None:
        raw = data.read()
        if raw:
            try:
                return str(raw.decode("utf-8-sig"))
            except UnicodeDecodeError:
                raise InvalidInput("The file is not UTF-8 text; save the CSV as UTF-8") from None
    pasted = ctx.form.get("csv")
    if isinstance(pasted, str) and pasted.strip():
        return pasted
    raise InvalidInput("Choose a CSV file (or paste its lines) to import")


@page
async def import_csv(ctx: Ctx) -> web.StreamResponse:
    group = await _group(ctx)
    try:
        result = await native(ctx).groups.import_csv(caller(ctx), group.id, _csv_text(ctx))
    except GatewayError as exc:
        return await _detail(ctx, group, 400, exc.message)
    note = f"Imported {len(result.added)} contact(s); {result.skipped} already in the group."
    if result.rejected:
        lines = "; ".join(f"line {n}: {why}" for n, why in result.rejected[:SHOWN_REJECTS])
        more = len(result.rejected) - SHOWN_REJECTS
        note += f" {len(result.rejected)} line(s) refused: {lines}"
        note += f" and {more} more." if more > 0 else "."
    ctx.flash(note, "error" if result.rejected and not result.added else "ok")
    raise ctx.redirect(f"/groups/{group.id}")
