"""Contact groups over the native API: the compat API's tags and contacts, with full CRUD, CSV
import, and sends to a whole group (a contact's name fills a template's `{name}`).

Writing needs `send` (the people who send manage whom they send to), reading `read`. A group of
another account, or none, is `group_not_found` (Onfon's 028). Within a group a number is kept
once: adding or importing a number the group has is counted as skipped, not stored twice.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

from simhive.server.core import limits, numbers
from simhive.server.core.errors import GatewayError, InvalidInput, NotFound
from simhive.server.core.keys import Caller
from simhive.server.core.native_models import Contact, Group
from simhive.server.store.base import Store


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: list[int]
    skipped: int  # already in the group (or twice in the file)
    rejected: list[tuple[int, str]]  # (line, why)


def _name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > limits.MAX_TITLE_CHARS:
        raise InvalidInput(
            f"Invalid group name: 1 to {limits.MAX_TITLE_CHARS} characters",
            details={"field": "name"},
        )
    return name


def _contact_name(name: str | None) -> str | None:
    if name is None or not name.strip():
        return None
    if len(name) > limits.MAX_TITLE_CHARS:
        raise InvalidInput(f"Contact name too long (at most {limits.MAX_TITLE_CHARS} characters)")
    return name.strip()


class Groups:
    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock

    async def create(self, caller: Caller, name: str) -> Group:
        caller.require("send")
        group_id = await self.store.create_tag(caller.account.id, _name(name), self.clock())
        return await self._get(caller, group_id)

    async def all(self, caller: Caller) -> list[Group]:
        caller.require("read")
        return await self.store.list_groups(caller.account.id)

    async def get(self, caller: Caller, group_id: int) -> Group:
        caller.require("read")
        return await self._get(caller, group_id)

    async def _get(self, caller: Caller, group_id: int) -> Group:
        found = await self.store.group_by_id(caller.account.id, group_id)
        if found is None:
            raise NotFound("Group not found", code="group_not_found")
        return found

    async def rename(self, caller: Caller, group_id: int, name: str) -> Group:
        caller.require("send")
        await self.store.rename_group(caller.account.id, group_id, _name(name))
        return await self._get(caller, group_id)

    async def delete(self, caller: Caller, group_id: int) -> None:
        caller.require("send")
        await self.store.delete_group(caller.account.id, group_id)

    async def contacts(
        self, caller: Caller, group_id: int, after: int, limit: int
    ) -> list[Contact]:
        caller.require("read")
        await self._get(caller, group_id)
        return await self.store.list_contacts(caller.account.id, group_id, after, limit)

    async def add(self, caller: Caller, group_id: int, phone: str, name: str | None) -> Contact:
        caller.require("send")
        number = numbers.normalise(phone)
        ids, _ = await self.store.add_contacts(
            caller.account.id, group_id, [(number, _contact_name(name))], self.clock()
        )
        if not ids:
            raise InvalidInput(
                f"{number} is in the group already", code="already_exists",
                details={"field": "phone"},
            )  # fmt: skip
        [contact] = await self.store.list_contacts(caller.account.id, group_id, ids[0] - 1, 1)
        return contact

    async def remove(self, caller: Caller, group_id: int, contact_id: int) -> None:
        caller.require("send")
        await self.store.delete_contact(caller.account.id, group_id, contact_id)

    async def import_csv(self, caller: Caller, group_id: int, text: str) -> ImportResult:
        """Rows of a CSV with a header naming a `phone` column (and optionally `name`); each
        row is judged alone, and the readable ones are stored in one transaction."""
        caller.require("send")
        await self._get(caller, group_id)
        reader = csv.reader(io.StringIO(text))
        header = [h.strip().lower() for h in next(reader, [])]
        if "phone" not in header:
            raise InvalidInput(
                "The CSV's first line must name its columns, one of them `phone`",
                details={"field": "csv"},
            )
        phone_at, name_at = header.index("phone"), header.index("name") if "name" in header else -1
        rows: list[tuple[str, str | None]] = []
        rejected: list[tuple[int, str]] = []
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(rows) + len(rejected) >= limits.MAX_API_RECIPIENTS:
                raise InvalidInput(
                    f"At most {limits.MAX_API_RECIPIENTS:,} rows per import",
                    code="too_many_numbers",
                )
            try:
                phone = row[phone_at] if phone_at < len(row) else ""
                name = row[name_at] if 0 <= name_at < len(row) else None
                rows.append((numbers.normalise(phone), _contact_name(name)))
            except GatewayError as exc:
                rejected.append((line, exc.message))
        added, skipped = await self.store.add_contacts(
            caller.account.id, group_id, rows, self.clock()
        )
        return ImportResult(added, skipped, rejected)

    async def recipients(self, caller: Caller, group_id: int) -> list[Contact]:
        """Every contact of the group, for a send (whose own scope check covers it)."""
        await self._get(caller, group_id)
        out: list[Contact] = []
        while True:
            page = await self.store.list_contacts(
                caller.account.id, group_id, out[-1].id if out else 0, limits.MAX_API_PAGE
            )
            out += page
            if len(page) < limits.MAX_API_PAGE:
                return out
