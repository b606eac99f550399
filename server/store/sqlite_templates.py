"""SQLite implementation of the template half of NativeStore (table of migration 14)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simhive.server.core.errors import AlreadyExists, NotFound
from simhive.server.core.native_models import Template
from simhive.server.store.sqlite_rows import columns, row_reader

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter


TEMPLATE_COLS = columns(Template)
_template_row = row_reader(Template)


class SqliteTemplateStore:
    """The template half of NativeStore, mixed into SqliteStore; needs its `writer` and `_all`."""

    writer: GroupCommitWriter

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore

    async def create_template(self, account_id: int, name: str, body: str, now: int) -> Template:
        def op(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    "INSERT INTO templates(account_id, name, body, created, updated)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (account_id, name, body, now, now),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"A template named {name!r} exists already") from None
            return int(cur.lastrowid or 0)

        return Template(await self.writer.submit(op), account_id, name, body, now, now)

    async def template_by_id(self, account_id: int, template_id: int) -> Template | None:
        rows = await self._all(
            f"SELECT {TEMPLATE_COLS} FROM templates WHERE id = ? AND account_id = ?",
            (template_id, account_id),
        )
        return _template_row(rows[0]) if rows else None

    async def list_templates(self, account_id: int) -> list[Template]:
        rows = await self._all(
            f"SELECT {TEMPLATE_COLS} FROM templates WHERE account_id = ? ORDER BY name",
            (account_id,),
        )
        return [_template_row(r) for r in rows]

    async def update_template(
        self, account_id: int, template_id: int, name: str, body: str, now: int
    ) -> Template:
        def op(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    "UPDATE templates SET name = ?, body = ?, updated = ?"
                    " WHERE id = ? AND account_id = ?",
                    (name, body, now, template_id, account_id),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"A template named {name!r} exists already") from None
            if not cur.rowcount:
                raise NotFound("Template not found")
            row = conn.execute("SELECT created FROM templates WHERE id = ?", (template_id,))
            return int(row.fetchone()[0])

        created = await self.writer.submit(op)
        return Template(template_id, account_id, name, body, created, now)

    async def delete_template(self, account_id: int, template_id: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "DELETE FROM templates WHERE id = ? AND account_id = ?", (template_id, account_id)
            )
            if not cur.rowcount:
                raise NotFound("Template not found")

        await self.writer.submit(op)
