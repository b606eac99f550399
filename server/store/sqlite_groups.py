"""SQLite implementation of the group half of NativeStore: groups are the compat API's `tags`
and contacts its `contacts` (migration 1), so a group made here is a tag there and back."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simhive.server.core.errors import NotFound
from simhive.server.core.native_models import Contact, Group

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

_GROUP_SQL = (
    "SELECT t.id, t.account_id, t.title, t.created,"
    " (SELECT COUNT(*) FROM contacts c WHERE c.tag_id = t.id) FROM tags t"
)


def _owned(conn: sqlite3.Connection, account_id: int, group_id: int) -> None:
    found = conn.execute(
        "SELECT 1 FROM tags WHERE id = ? AND account_id = ?", (group_id, account_id)
    ).fetchone()
    if found is None:
        raise NotFound("Group not found", code="group_not_found")


class SqliteGroupStore:
    """Mixed into SqliteStore; needs its `writer` and `_all`."""

    writer: GroupCommitWriter

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore

    async def list_groups(self, account_id: int) -> list[Group]:
        rows = await self._all(_GROUP_SQL + " WHERE t.account_id = ? ORDER BY t.id", (account_id,))
        return [Group(*r) for r in rows]

    async def group_by_id(self, account_id: int, group_id: int) -> Group | None:
        rows = await self._all(
            _GROUP_SQL + " WHERE t.id = ? AND t.account_id = ?", (group_id, account_id)
        )
        return Group(*rows[0]) if rows else None

    async def rename_group(self, account_id: int, group_id: int, name: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _owned(conn, account_id, group_id)
            conn.execute("UPDATE tags SET title = ? WHERE id = ?", (name, group_id))

        await self.writer.submit(op)

    async def delete_group(self, account_id: int, group_id: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _owned(conn, account_id, group_id)
            conn.execute("DELETE FROM contacts WHERE tag_id = ?", (group_id,))
            conn.execute("DELETE FROM tags WHERE id = ?", (group_id,))

        await self.writer.submit(op)

    async def list_contacts(
        self, account_id: int, group_id: int, after: int, limit: int
    ) -> list[Contact]:
        rows = await self._all(
            "SELECT id, tag_id, phone, fullname, created FROM contacts"
            " WHERE tag_id = ? AND account_id = ? AND id > ? ORDER BY id LIMIT ?",
            (group_id, account_id, after, limit),
        )
        return [Contact(*r) for r in rows]

    async def add_contacts(
        self, account_id: int, group_id: int, contacts: Sequence[tuple[str, str | None]], now: int
    ) -> tuple[list[int], int]:
        def op(conn: sqlite3.Connection) -> tuple[list[int], int]:
            _owned(conn, account_id, group_id)
            have = {
                str(r[0])
                for r in conn.execute("SELECT phone FROM contacts WHERE tag_id = ?", (group_id,))
            }
            ids: list[int] = []
            skipped = 0
            for phone, name in contacts:
                if phone in have:
                    skipped += 1
                    continue
                have.add(phone)
                cur = conn.execute(
                    "INSERT INTO contacts(account_id, tag_id, phone, fullname, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (account_id, group_id, phone, name, now),
                )
                ids.append(int(cur.lastrowid or 0))
            return ids, skipped

        return await self.writer.submit(op)

    async def delete_contact(self, account_id: int, group_id: int, contact_id: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "DELETE FROM contacts WHERE id = ? AND tag_id = ? AND account_id = ?",
                (contact_id, group_id, account_id),
            )
            if not cur.rowcount:
                raise NotFound("Contact not found")

        await self.writer.submit(op)
