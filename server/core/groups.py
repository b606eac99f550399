"""Contact groups: named lists of numbers, each with a name and template variables, that sends
and campaigns can name instead of numbers. Writing needs the `send` scope, reading `read`.

A contact's number is stored normalised (numbers.py), and a group holds a number once: adding
it again is `already_exists` (Onfon's 029), a group that is not the account's is
`group_not_found` (028). A contact's name is also its `{name}` template variable.

CSV import takes a header row: a `number` column (or `phone`), an optional `name`, and any other
column becomes a template variable of that name. Each row is judged alone; the answer names
every refused row by its line number, with a code and a message.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simhive.server.core import limits, numbers
from simhive.server.core.errors import AlreadyExists, GatewayError, InvalidInput, NotFound
from simhive.server.core.group_models import Contact, Group, NewContact
from simhive.server.core.keys import Caller
from simhive.server.core.native_models import PLACEHOLDER
from simhive.server.core.sending import SendRequest
from simhive.server.core.templates import MAX_VARIABLE_CHARS
from simhive.server.store.base import Store

# A group fits one send (limits.MAX_API_RECIPIENTS).
MAX_GROUP_CONTACTS = limits.MAX_API_RECIPIENTS
MAX_CSV_CHARS = 2_000_000
MAX_CONTACT_VARIABLES = 50
NUMBER_COLUMNS = ("number", "phone")
MAX_ROW_ERRORS = 1000  # an import of junk answers the first ones, and how many in all


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # line of the CSV file (the header is line 1)
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    rows: int
    created: int
    updated: int
    unchanged: int  # numbers the group had already (without update)
    rejected: int
    errors: list[RowError]


@dataclass(frozen=True, slots=True)
class ContactPage:
    contacts: list[Contact]
    next_cursor: int | None


def group_not_found() -> NotFound:
    return NotFound("Group not found", code="group_not_found")


def check_name(name: str, what: str = "group") -> str:
    name = name.strip()
    if not name or len(name) > limits.MAX_TITLE_CHARS:
        raise InvalidInput(f"Invalid {what} name: 1 to {limits.MAX_TITLE_CHARS} characters",
                           details={"field": "name"})  # fmt: skip
    return name


def check_contact_name(name: str) -> str:
    name = name.strip()
    if len(name) > limits.MAX_TITLE_CHARS:
        raise InvalidInput(f"name: at most {limits.MAX_TITLE_CHARS} characters",
                           details={"field": "name"})  # fmt: skip
    return name


def check_variables(values: dict[str, str]) -> dict[str, str]:
    if len(values) > MAX_CONTACT_VARIABLES:
        raise InvalidInput(f"At most {MAX_CONTACT_VARIABLES} variables",
                           details={"field": "variables"})  # fmt: skip
    for key, value in values.items():
        if not PLACEHOLDER.fullmatch("{" + key + "}"):
            raise InvalidInput(
                f"Variable name {key[:40]!r}: a letter or _ then letters, digits, _",
                details={"field": "variables"},
            )
        if len(value) > MAX_VARIABLE_CHARS:
            raise InvalidInput(f"Variable {key}: at most {MAX_VARIABLE_CHARS} characters",
                               details={"field": "variables"})  # fmt: skip
    return dict(values)


def contact_number(raw: str) -> str:
    try:
        return numbers.normalise(raw)
    except GatewayError as exc:
        raise InvalidInput(exc.message, code="invalid_numbers",
                           details={"field": "number"}) from None  # fmt: skip


class Groups:
    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock

    async def create(self, caller: Caller, name: str) -> Group:
        caller.require("send")
        return await self.store.create_group(caller.account.id, check_name(name), self.clock())

    async def list_groups(self, caller: Caller) -> list[Group]:
        caller.require("read")
        return await self.store.list_groups(caller.account.id)

    async def get(self, caller: Caller, group_id: int) -> Group:
        caller.require("read")
        return await self._group(caller, group_id)

    async def _group(self, caller: Caller, group_id: int) -> Group:
        found = await self.store.group_by_id(caller.account.id, group_id)
        if found is None:
            raise group_not_found()
        return found

    async def rename(self, caller: Caller, group_id: int, name: str) -> Group:
        caller.require("send")
        return await self.store.rename_group(
            caller.account.id, group_id, check_name(name), self.clock()
        )

    async def delete(self, caller: Caller, group_id: int) -> None:
        caller.require("send")
        await self.store.delete_group(caller.account.id, group_id)

    # -- contacts --------------------------------------------------------------------------
    async def add_contact(
        self, caller: Caller, group_id: int, number: str, name: str, variables: dict[str, str]
    ) -> Contact:
        caller.require("send")
        group = await self._group(caller, group_id)
        new = NewContact(contact_number(number), check_contact_name(name),
                         check_variables(variables))  # fmt: skip
        self._room(group, 1)
        [(contact_id, created)] = await self.store.add_contacts(group.id, [new], False,
                                                                self.clock())  # fmt: skip
        if not created:
            raise _number_taken(new.number)
        found = await self.store.contact_by_id(group.id, contact_id)
        assert found is not None
        return found

    @staticmethod
    def _room(group: Group, adding: int) -> None:
        if group.contacts + adding > MAX_GROUP_CONTACTS:
            raise InvalidInput(
                f"A group holds at most {MAX_GROUP_CONTACTS:,} contacts ({group.contacts} now)",
                code="too_many_numbers",
                details={"limit": MAX_GROUP_CONTACTS, "contacts": group.contacts},
            )

    async def contacts(self, caller: Caller, group_id: int, after: int, limit: int) -> ContactPage:
        caller.require("read")
        if not 1 <= limit <= limits.MAX_API_PAGE:
            raise InvalidInput(f"limit: 1 to {limits.MAX_API_PAGE}", details={"field": "limit"})
        group = await self._group(caller, group_id)
        rows = await self.store.list_contacts(group.id, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return ContactPage(rows, rows[-1].id if more and rows else None)

    async def contact(self, caller: Caller, group_id: int, contact_id: int) -> Contact:
        caller.require("read")
        return await self._contact(caller, group_id, contact_id)

    async def _contact(self, caller: Caller, group_id: int, contact_id: int) -> Contact:
        group = await self._group(caller, group_id)
        found = await self.store.contact_by_id(group.id, contact_id)
        if found is None:
            raise NotFound("Contact not found")
        return found

    async def update_contact(
        self,
        caller: Caller,
        group_id: int,
        contact_id: int,
        number: str | None,
        name: str | None,
        variables: dict[str, str] | None,
    ) -> Contact:
        caller.require("send")
        current = await self._contact(caller, group_id, contact_id)
        changed = dataclasses.replace(
            current,
            number=contact_number(number) if number is not None else current.number,
            name=check_contact_name(name) if name is not None else current.name,
            variables=check_variables(variables) if variables is not None else current.variables,
        )
        return await self.store.update_contact(group_id, changed, self.clock())

    async def delete_contact(self, caller: Caller, group_id: int, contact_id: int) -> None:
        caller.require("send")
        await self._contact(caller, group_id, contact_id)
        await self.store.delete_contact(group_id, contact_id)

    async def import_csv(self, caller: Caller, group_id: int, text: str,
                         update: bool) -> ImportReport:  # fmt: skip
        caller.require("send")
        group = await self._group(caller, group_id)
        if len(text) > MAX_CSV_CHARS:
            raise InvalidInput(f"csv: at most {MAX_CSV_CHARS:,} characters",
                               details={"field": "csv"})  # fmt: skip
        lines, header = _read_csv(text)
        errors: list[RowError] = []
        rows: list[tuple[int, NewContact]] = []
        seen: dict[str, int] = {}
        for line, cells in lines:
            try:
                contact = _row_contact(header, cells)
            except GatewayError as exc:
                errors.append(RowError(line, exc.code, exc.message))
                continue
            if contact.number in seen:
                errors.append(RowError(line, "already_exists",
                                       f"{contact.number} is on line {seen[contact.number]}"
                                       " already"))  # fmt: skip
                continue
            seen[contact.number] = line
            rows.append((line, contact))
        room = MAX_GROUP_CONTACTS - group.contacts
        if len(rows) > room:  # existing numbers would not need room; keep it simple and safe
            for line, _ in rows[room:]:
                errors.append(
                    RowError(
                        line,
                        "too_many_numbers",
                        f"The group is full ({MAX_GROUP_CONTACTS:,} contacts)",
                    )
                )
            rows = rows[:room]
        results = await self.store.add_contacts(group.id, [c for _, c in rows], update,
                                                self.clock())  # fmt: skip
        created = sum(1 for _, new in results if new)
        old = len(results) - created
        errors.sort(key=lambda e: e.row)
        return ImportReport(
            rows=len(lines),
            created=created,
            updated=old if update else 0,
            unchanged=0 if update else old,
            rejected=len(errors),
            errors=errors[:MAX_ROW_ERRORS],
        )

    # -- sends -----------------------------------------------------------------------------
    async def members(self, caller: Caller, group_ids: Sequence[int]) -> list[Contact]:
        """The contacts of the groups, a number once (its first group's entry)."""
        for group_id in dict.fromkeys(group_ids):
            await self._group(caller, group_id)
        seen: set[str] = set()
        out: list[Contact] = []
        for contact in await self.store.group_members(list(dict.fromkeys(group_ids))):
            if contact.number not in seen:
                seen.add(contact.number)
                out.append(contact)
        return out

    async def with_groups(
        self, caller: Caller, req: SendRequest, group_ids: Sequence[int]
    ) -> SendRequest:
        """The send with the groups' contacts added as recipients: each with its name and
        variables as its own template variables. Numbers given in `to` are not sent twice."""
        caller.require("send")
        given = set(req.to)
        contacts = [c for c in await self.members(caller, group_ids) if c.number not in given]
        if len(req.to) + len(contacts) > limits.MAX_API_RECIPIENTS:
            raise InvalidInput(
                f"Too many recipients: {len(req.to) + len(contacts)} with the groups (at most"
                f" {limits.MAX_API_RECIPIENTS})",
                code="too_many_numbers",
                details={"field": "groups", "limit": limits.MAX_API_RECIPIENTS},
            )
        own = list(req.per_recipient) if req.per_recipient is not None else [{} for _ in req.to]
        return dataclasses.replace(
            req,
            to=[*req.to, *(c.number for c in contacts)],
            per_recipient=own + [contact_variables(c) for c in contacts],
        )


def contact_variables(c: Contact) -> dict[str, str]:
    return {"name": c.name, **c.variables} if c.name else dict(c.variables)


def _number_taken(number: str) -> GatewayError:
    return AlreadyExists(f"The group has a contact with number {number} already",
                         details={"field": "number"})  # fmt: skip


def _read_csv(text: str) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """(data rows with their line numbers, the header's column names, folded)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")), strict=True)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        rows = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    except csv.Error as exc:
        raise InvalidInput(
            f"csv: line {reader.line_num}: {exc}", details={"field": "csv"}
        ) from None
    number_cols = [h for h in header if h in NUMBER_COLUMNS]
    if len(number_cols) != 1:
        raise InvalidInput(
            "csv: the first line must name the columns, one of them `number` (or `phone`)",
            details={"field": "csv", "columns": header[:20]},
        )
    if len(set(header)) != len(header) or "" in header:
        raise InvalidInput("csv: every column needs a name of its own", details={"field": "csv"})
    for h in header:
        if h not in NUMBER_COLUMNS and h != "name" and not PLACEHOLDER.fullmatch("{" + h + "}"):
            raise InvalidInput(
                f"csv: column {h[:40]!r} is no variable name (a letter or _ then letters,"
                " digits, _)",
                details={"field": "csv"},
            )
    if len(header) > MAX_CONTACT_VARIABLES + 2:
        raise InvalidInput(f"csv: at most {MAX_CONTACT_VARIABLES + 2} columns",
                           details={"field": "csv"})  # fmt: skip
    return rows, header


def _row_contact(header: list[str], cells: list[str]) -> NewContact:
    if len(cells) != len(header):
        raise InvalidInput(f"{len(cells)} values for {len(header)} columns")
    values = dict(zip(header, cells, strict=True))
    number = next(values.pop(h) for h in NUMBER_COLUMNS if h in values)
    if not number.strip():
        raise InvalidInput("No number", code="invalid_numbers")
    name = check_contact_name(values.pop("name", ""))
    return NewContact(contact_number(number), name, check_variables(values))
