"""The PostgreSQL twin of sqlite_templates.py (table of pg_schema migration 14)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.core.errors import AlreadyExists, NotFound
from simhive.server.core.native_models import Template
from simhive.server.store.sqlite_templates import TEMPLATE_COLS, _template_row

T = TypeVar("T")
Conn = asyncpg.Connection


class PgTemplateStore:
    """The template half of NativeStore, mixed into PgStore; needs its `_write` and `_all`."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def create_template(self, account_id: int, name: str, body: str, now: int) -> Template:
        async def op(conn: Conn) -> int:
            try:
                return int(
                    await conn.fetchval(
                        "INSERT INTO templates(account_id, name, body, created, updated)"
                        " VALUES ($1, $2, $3, $4, $4) RETURNING id",
                        account_id,
                        name,
                        body,
                        now,
                    )  # fmt: skip
                )
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(f"A template named {name!r} exists already") from None

        return Template(await self._write(op), account_id, name, body, now, now)

    async def template_by_id(self, account_id: int, template_id: int) -> Template | None:
        rows = await self._all(
            f"SELECT {TEMPLATE_COLS} FROM templates WHERE id = $1 AND account_id = $2",
            template_id, account_id,
        )  # fmt: skip
        return _template_row(rows[0]) if rows else None

    async def list_templates(self, account_id: int) -> list[Template]:
        # COLLATE "C": names in code-point order, as SQLite's BINARY collation sorts them.
        rows = await self._all(
            f"SELECT {TEMPLATE_COLS} FROM templates WHERE account_id = $1"
            ' ORDER BY name COLLATE "C"',
            account_id,
        )
        return [_template_row(r) for r in rows]

    async def update_template(
        self, account_id: int, template_id: int, name: str, body: str, now: int
    ) -> Template:
        async def op(conn: Conn) -> int:
            try:
                created = await conn.fetchval(
                    "UPDATE templates SET name = $1, body = $2, updated = $3"
                    " WHERE id = $4 AND account_id = $5 RETURNING created",
                    name, body, now, template_id, account_id,
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(f"A template named {name!r} exists already") from None
            if created is None:
                raise NotFound("Template not found")
            return int(created)

        created = await self._write(op)
        return Template(template_id, account_id, name, body, created, now)

    async def delete_template(self, account_id: int, template_id: int) -> None:
        async def op(conn: Conn) -> None:
            done = await conn.execute(
                "DELETE FROM templates WHERE id = $1 AND account_id = $2", template_id, account_id
            )
            if done.split()[-1] == "0":
                raise NotFound("Template not found")

        await self._write(op)
