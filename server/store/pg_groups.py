"""The PostgreSQL twin of sqlite_groups.py: groups are the compat API's `tags` and contacts its
`contacts`, so a group made here is a tag there and back.

A write locks the group's row first (`FOR UPDATE`): two servers adding the same phone to one
group at once are taken one after the other, so the second sees the first's contact and skips
it, as SQLite's single writer would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.core.errors import NotFound
from simhive.server.core.native_models import Contact, Group

T = TypeVar("T")
Conn = asyncpg.Connection

_GROUP_SQL = (
    "SELECT t.id, t.account_id, t.title, t.created,"
    " (SELECT COUNT(*) FROM contacts c WHERE c.tag_id = t.id) FROM tags t"
)


async def _lock_owned(conn: Conn, account_id: int, group_id: int) -> None:
    found = await conn.fetchval(
        "SELECT 1 FROM tags WHERE id = $1 AND account_id = $2 FOR UPDATE", group_id, account_id
    )
    if found is None:
        raise NotFound("Group not found", code="group_not_found")


class PgGroupStore:
    """The group half of NativeStore, mixed into PgStore; needs its `_write` and `_all`."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def list_groups(self, account_id: int) -> list[Group]:
        rows = await self._all(_GROUP_SQL + " WHERE t.account_id = $1 ORDER BY t.id", account_id)
        return [Group(*r) for r in rows]

    async def group_by_id(self, account_id: int, group_id: int) -> Group | None:
        rows = await self._all(
            _GROUP_SQL + " WHERE t.id = $1 AND t.account_id = $2", group_id, account_id
        )
        return Group(*rows[0]) if rows else None

    async def rename_group(self, account_id: int, group_id: int, name: str) -> None:
        async def op(conn: Conn) -> None:
            await _lock_owned(conn, account_id, group_id)
            await conn.execute("UPDATE tags SET title = $1 WHERE id = $2", name, group_id)

        await self._write(op)

    async def delete_group(self, account_id: int, group_id: int) -> None:
        async def op(conn: Conn) -> None:
            await _lock_owned(conn, account_id, group_id)
            await conn.execute("DELETE FROM contacts WHERE tag_id = $1", group_id)
            await conn.execute("DELETE FROM tags WHERE id = $1", group_id)

        await self._write(op)

    async def list_contacts(
        self, account_id: int, group_id: int, after: int, limit: int
    ) -> list[Contact]:
        rows = await self._all(
            "SELECT id, tag_id, phone, fullname, created FROM contacts"
            " WHERE tag_id = $1 AND account_id = $2 AND id > $3 ORDER BY id LIMIT $4",
            group_id, account_id, after, limit,
        )  # fmt: skip
        return [Contact(*r) for r in rows]

    async def add_contacts(
        self, account_id: int, group_id: int, contacts: Sequence[tuple[str, str | None]], now: int
    ) -> tuple[list[int], int]:
        async def op(conn: Conn) -> tuple[list[int], int]:
            await _lock_owned(conn, account_id, group_id)
            have = {
                str(r[0])
                for r in await conn.fetch("SELECT phone FROM contacts WHERE tag_id = $1", group_id)
            }
            fresh: list[tuple[str, str | None]] = []
            for phone, name in contacts:
                if phone not in have:
                    have.add(phone)
                    fresh.append((phone, name))
            # One statement for the new ones; ORDER BY n keeps their ids in input order.
            rows = await conn.fetch(
                "INSERT INTO contacts(account_id, tag_id, phone, fullname, created)"
                " SELECT $1, $2, phone, name, $3 FROM unnest($4::text[], $5::text[])"
                " WITH ORDINALITY AS r(phone, name, n) ORDER BY n RETURNING id",
                account_id, group_id, now, [p for p, _ in fresh], [n for _, n in fresh],
            )  # fmt: skip
            return sorted(int(r[0]) for r in rows), len(contacts) - len(fresh)

        return await self._write(op)

    async def delete_contact(self, account_id: int, group_id: int, contact_id: int) -> None:
        async def op(conn: Conn) -> None:
            done = await conn.execute(
                "DELETE FROM contacts WHERE id = $1 AND tag_id = $2 AND account_id = $3",
                contact_id, group_id, account_id,
            )  # fmt: skip
            if done.split()[-1] == "0":
                raise NotFound("Contact not found")

        await self._write(op)
