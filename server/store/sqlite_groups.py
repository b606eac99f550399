"""SQLite implementation of GroupStore (tables of the contact groups migration), mixed into
SqliteStore: it needs the store's `writer` and `_all`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simhive.server.core.errors import AlreadyExists, NotFound
from simhive.server.core.group_models import Contact, Group, NewContact
from simhive.server.store.groups_base import GroupStore
from simhive.server.store.sqlite_rows import columns, row_reader

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

_GROUP_SELECT = (
    "SELECT g.id, g.account_id, g.name, g.created, g.updated,"
    " (SELECT COUNT(*) FROM group_contacts c WHERE c.group_id = g.id) FROM contact_groups g"
)
CONTACT_COLS = columns(Contact)
_group_row = row_reader(Group)
_contact_row = row_reader(Contact, variables=lambda v: dict(json.loads(v or "{}")))


def _name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"A group named {name!r} exists already", details={"field": "name"})


class SqliteGroupStore(GroupStore):
    writer: GroupCommitWriter

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore

    async def create_group(self, account_id: int, name: str, now: int) -> Group:
        def op(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    "INSERT INTO contact_groups(account_id, name, created, updated)"
                    " VALUES (?, ?, ?, ?)",
                    (account_id, name, now, now),
                )
            except sqlite3.IntegrityError:
                raise _name_taken(name) from None
            return int(cur.lastrowid or 0)

        return Group(await self.writer.submit(op), account_id, name, now, now)

    async def group_by_id(self, account_id: int, group_id: int) -> Group | None:
        rows = await self._all(
            _GROUP_SELECT + " WHERE g.id = ? AND g.account_id = ?", (group_id, account_id)
        )
        return _group_row(rows[0]) if rows else None

    async def list_groups(self, account_id: int) -> list[Group]:
        rows = await self._all(_GROUP_SELECT + " WHERE g.account_id = ? ORDER BY g.name",
                               (account_id,))  # fmt: skip
        return [_group_row(r) for r in rows]

    async def rename_group(self, account_id: int, group_id: int, name: str, now: int) -> Group:
        def op(conn: sqlite3.Connection) -> None:
            try:
                cur = conn.execute(
                    "UPDATE contact_groups SET name = ?, updated = ?"
                    " WHERE id = ? AND account_id = ?",
                    (name, now, group_id, account_id),
                )
            except sqlite3.IntegrityError:
                raise _name_taken(name) from None
            if not cur.rowcount:
                raise NotFound("Group not found", code="group_not_found")

        await self.writer.submit(op)
        found = await self.group_by_id(account_id, group_id)
        if found is None:  # deleted in between
            raise NotFound("Group not found", code="group_not_found")
        return found

    async def delete_group(self, account_id: int, group_id: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            owned = conn.execute(
                "SELECT 1 FROM contact_groups WHERE id = ? AND account_id = ?",
                (group_id, account_id),
            ).fetchone()
            if owned is None:
                raise NotFound("Group not found", code="group_not_found")
            conn.execute("DELETE FROM group_contacts WHERE group_id = ?", (group_id,))
            conn.execute("DELETE FROM contact_groups WHERE id = ?", (group_id,))

        await self.writer.submit(op)

    async def add_contacts(
        self, group_id: int, contacts: Sequence[NewContact], update: bool, now: int
    ) -> list[tuple[int, bool]]:
        def op(conn: sqlite3.Connection) -> list[tuple[int, bool]]:
            out: list[tuple[int, bool]] = []
            for c in contacts:
                found = conn.execute(
                    "SELECT id FROM group_contacts WHERE group_id = ? AND number = ?",
                    (group_id, c.number),
                ).fetchone()
                if found is not None:
                    if update:
                        conn.execute(
                            "UPDATE group_contacts SET name = ?, variables = ?, updated = ?"
                            " WHERE id = ?",
                            (c.name, json.dumps(c.variables), now, found[0]),
                        )
                    out.append((int(found[0]), False))
                    continue
                cur = conn.execute(
                    "INSERT INTO group_contacts(group_id, number, name, variables, created,"
                    " updated) VALUES (?, ?, ?, ?, ?, ?)",
                    (group_id, c.number, c.name, json.dumps(c.variables), now, now),
                )
                out.append((int(cur.lastrowid or 0), True))
            conn.execute("UPDATE contact_groups SET updated = ? WHERE id = ?", (now, group_id))
            return out

        return await self.writer.submit(op)

    async def contact_by_id(self, group_id: int, contact_id: int) -> Contact | None:
        rows = await self._all(
            f"SELECT {CONTACT_COLS} FROM group_contacts WHERE id = ? AND group_id = ?",
            (contact_id, group_id),
        )
        return _contact_row(rows[0]) if rows else None

    async def list_contacts(self, group_id: int, after: int, limit: int) -> list[Contact]:
        rows = await self._all(
            f"SELECT {CONTACT_COLS} FROM group_contacts WHERE group_id = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (group_id, after, limit),
        )
        return [_contact_row(r) for r in rows]

    async def update_contact(self, group_id: int, contact: Contact, now: int) -> Contact:
        def op(conn: sqlite3.Connection) -> None:
            try:
                cur = conn.execute(
                    "UPDATE group_contacts SET number = ?, name = ?, variables = ?, updated = ?"
                    " WHERE id = ? AND group_id = ?",
                    (contact.number, contact.name, json.dumps(contact.variables), now,
                     contact.id, group_id),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"The group has a contact with number {contact.number} already",
                    details={"field": "number"},
                ) from None
            if not cur.rowcount:
                raise NotFound("Contact not found")

        await self.writer.submit(op)
        found = await self.contact_by_id(group_id, contact.id)
        if found is None:
            raise NotFound("Contact not found")
        return found

    async def delete_contact(self, group_id: int, contact_id: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "DELETE FROM group_contacts WHERE id = ? AND group_id = ?", (contact_id, group_id)
            )
            if not cur.rowcount:
                raise NotFound("Contact not found")

        await self.writer.submit(op)

    async def group_members(self, group_ids: Sequence[int]) -> list[Contact]:
        out: list[Contact] = []
        for group_id in group_ids:
            rows = await self._all(
                f"SELECT {CONTACT_COLS} FROM group_contacts WHERE group_id = ? ORDER BY id",
                (group_id,),
            )
            out += [_contact_row(r) for r in rows]
        return out
