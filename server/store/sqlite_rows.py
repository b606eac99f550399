"""Column lists and row -> record conversions shared by the SQLite store modules.

Each record's columns are listed in the order of its dataclass fields, so one generic reader
serves them all: `cls(*row)`, with SQLite's 0/1 turned back into bools for the fields typed bool
and a few columns decoded from their stored form.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from simhive.server.core.models import Account, Balance, Device, Message, Sim

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
# A row is anything that indexes and slices like a tuple: sqlite3.Row, tuple, asyncpg.Record (the
# PostgreSQL store reads its rows with the same readers).
RowReader = Callable[[Any], T]


def columns(cls: type[DataclassInstance], prefix: str = "", **renamed: str) -> str:
    """The SELECT list for `cls`: its field names in order, prefixed, or as renamed."""
    return ", ".join(renamed.get(f.name, prefix + f.name) for f in fields(cls))


def row_reader(cls: type[T], **decode: Callable[[Any], Any]) -> RowReader[T]:
    """A row -> cls converter for rows selected with `columns(cls, ...)`; extra trailing columns
    are ignored. `decode` maps a field name to a function of its stored value."""
    names = [f.name for f in fields(cls)]
    width = len(names)
    steps: list[tuple[int, Callable[[Any], Any]]] = []
    for index, f in enumerate(fields(cls)):
        step = decode.get(f.name) or (bool if f.type == "bool" else None)
        if step is not None:
            steps.append((index, step))
    unknown = set(decode) - set(names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")

    def read(row: Any) -> T:
        values = list(row[:width])
        for index, step in steps:
            values[index] = step(values[index])
        return cls(*values)

    return read


def _prefix_rules(stored: str | None) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in json.loads(stored or "[]"))


def balance_json(balance: Balance | None) -> str | None:
    """A SIM's balance as the sims.balance column stores it."""
    if balance is None:
        return None
    b = balance
    return json.dumps(
        {"text": b.text, "amount": b.amount, "currency": b.currency, "low": b.low,
         "checked_at": b.checked_at},
        ensure_ascii=False,
    )  # fmt: skip


def _balance(stored: str | None) -> Balance | None:
    if not stored:
        return None
    v = json.loads(stored)
    return Balance(str(v["text"]), v.get("amount"), v.get("currency"), bool(v.get("low")),
                   v.get("checked_at"))  # fmt: skip


ACCOUNT_COLS = columns(Account, "a.")
DEVICE_COLS = columns(Device)
SIM_COLS = columns(Sim)
MESSAGE_COLS = columns(
    Message, "m.", paket_title="p.title", paket_body="p.body",
    pool="(SELECT name FROM pools WHERE id = m.pool_id)",
)  # fmt: skip

account_row = row_reader(Account)
device_row = row_reader(Device, prefix_rules=_prefix_rules)
sim_row = row_reader(Sim, balance=_balance)
message_row = row_reader(Message)
