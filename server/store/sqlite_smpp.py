"""SQLite tables of the SMPP door (sqlite_schema.py migrations 10 and 20): submitted ids, parts of
concatenated messages, and the deliver_sm outbox that triggers fill. SMPP logins are API keys
(the native store's api_keys).

A wrapper over an open SqliteStore (its writer and read connection), so the SMPP door needs no
change to the store classes the other doors use.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from simhive.server.store.base import AfterInsert
from simhive.server.store.sqlite import SqliteStore

FINAL_STATUSES = (7, 8, 9, 10, 11, 12, 100, 101)
# The outbox status of a receipt for a message whose validity_period ran out before any SIM took
# it (no simhive status is 0).
EXPIRED = 0
# Marked parts whose message was being stored, in databases written before a message and its
# parts' links were one transaction; such rows are only pruned.
CLAIMED = -1


@dataclass(frozen=True, slots=True)
class Submit:
    smpp_id: str
    sms_id: int | None
    registered_delivery: int
    created: int
    expired: bool = False


@dataclass(frozen=True, slots=True)
class Part:
    seq: int
    text: str
    smpp_id: str


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    account_id: int
    kind: str  # 'receipt' or 'mo'
    sms_id: int
    smpp_id: str | None
    status: int
    done: int  # when the status was reached (receipts) or the SMS came in (mo)
    body: str
    sendto: str  # receipts: the recipient; mo: the sender
    submitted: int | None  # receipts: when the ESME submitted
    source_addr: str  # receipts: the ESME's source_addr; mo: the receiving SIM's number
    dest_addr: str


# Outbox rows with what their deliver_sm needs; the same SELECT on both engines.
OUTBOX_ROWS = (
    "SELECT o.id, o.account_id, o.kind, o.sms_id, o.smpp_id, o.status, o.created,"
    " COALESCE(m.body, ''), COALESCE(m.sendto, ''), s.created,"
    " COALESCE(s.source_addr, sim.number, ''), COALESCE(s.dest_addr, '')"
    " FROM smpp_outbox o LEFT JOIN messages m ON m.id = o.sms_id"
    " LEFT JOIN smpp_submits s ON s.smpp_id = o.smpp_id"
    " LEFT JOIN sims sim ON o.kind = 'mo' AND sim.device_id = m.device_id AND sim.slot = m.sim"
)
# Pending rows of an account (?) that no one holds at a time (?).
_CLAIMABLE = (
    "account_id = ? AND state = 'pending' AND (claimed_until IS NULL OR claimed_until <= ?)"
)


def outbox_row(r: Any) -> OutboxRow:
    return OutboxRow(
        id=int(r[0]),
        account_id=int(r[1]),
        kind=str(r[2]),
        sms_id=int(r[3]),
        smpp_id=None if r[4] is None else str(r[4]),
        status=int(r[5]),
        done=int(r[6]),
        body=str(r[7]),
        sendto=str(r[8]),
        submitted=None if r[9] is None else int(r[9]),
        source_addr=str(r[10]),
        dest_addr=str(r[11]),
    )


class PartsTaken(Exception):
    """The parts of a concatenated message were linked to a message by another submit."""


def _open_parts(conn: sqlite3.Connection, account_id: int, key: str) -> dict[int, Part]:
    """The parts of `key` not linked to a message yet, by part number."""
    rows = conn.execute(
        "SELECT part_seq, part_text, smpp_id FROM smpp_submits WHERE account_id = ?"
        " AND concat_key = ? AND sms_id IS NULL ORDER BY part_seq, id",
        (account_id, key),
    ).fetchall()
    return latest_parts(rows)


def latest_parts(rows: Iterable[Any]) -> dict[int, Part]:
    """(part_seq, part_text, smpp_id) rows in part_seq, id order, of either engine, by part
    number: a part sent again replaces its text (the last one wins)."""
    latest: dict[int, Part] = {}
    for r in rows:
        latest[int(r[0])] = Part(int(r[0]), str(r[1]), str(r[2]))
    return latest


def submit_of(row: Any) -> Submit:
    """A row of (smpp_id, sms_id, registered_delivery, created, expired), of either engine."""
    sms_id = None if row[1] is None or int(row[1]) == CLAIMED else int(row[1])
    return Submit(str(row[0]), sms_id, int(row[2]), int(row[3]), bool(row[4]))


class SqliteSmppStore:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.writer = store.writer

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self.store._all(sql, params)  # the store's read connection

    # -- submits ---------------------------------------------------------------------------
    @staticmethod
    def submit_row(
        account_id: int,
        registered_delivery: int,
        source_addr: str,
        dest_addr: str,
        now: int,
        expires: int | None = None,
    ) -> AfterInsert:
        """Remember a whole message's id for its receipt and its validity: a follow-up for
        Gateway.send, written in the message's own transaction (no crash can come between)."""

        def then(conn: sqlite3.Connection, ids: list[int]) -> None:
            (sms_id,) = ids
            conn.execute(
                "INSERT INTO smpp_submits(account_id, sms_id, smpp_id, registered_delivery,"
                " source_addr, dest_addr, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (account_id, sms_id, str(sms_id), registered_delivery, source_addr, dest_addr,
                 now, expires),
            )  # fmt: skip

        return then

    async def add_part(
        self,
        account_id: int,
        key: str,
        seq: int,
        total: int,
        text: str,
        registered_delivery: int,
        source_addr: str,
        dest_addr: str,
        now: int,
        expires: int | None = None,
    ) -> tuple[str, list[Part] | None]:
        """Store one part; (its id, and every part in order when this one completed the set,
        which the caller then stores as one message with `link_parts` as its follow-up)."""

        def op(conn: sqlite3.Connection) -> tuple[str, list[Part] | None]:
            cur = conn.execute(
                "INSERT INTO smpp_submits(account_id, smpp_id, registered_delivery, source_addr,"
                " dest_addr, concat_key, part_seq, part_text, created, expires)"
                " VALUES (?, '', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account_id,
                    registered_delivery,
                    source_addr,
                    dest_addr,
                    key,
                    seq,
                    text,
                    now,
                    expires,
                ),  # fmt: skip
            )
            row_id = int(cur.lastrowid or 0)
            smpp_id = f"p{row_id}"
            conn.execute("UPDATE smpp_submits SET smpp_id = ? WHERE id = ?", (smpp_id, row_id))
            latest = _open_parts(conn, account_id, key)
            if len(latest) < total:
                return smpp_id, None
            return smpp_id, [latest[s] for s in sorted(latest)]

        return await self.writer.submit(op)

    @staticmethod
    def link_parts(account_id: int, key: str, total: int) -> AfterInsert:
        """A follow-up for Gateway.send storing a completed set's message: point its parts at
        the message in the same transaction. Raises PartsTaken (undoing the message) when
        another submit of the same last part stored the message first."""

        def then(conn: sqlite3.Connection, ids: list[int]) -> None:
            (sms_id,) = ids
            if len(_open_parts(conn, account_id, key)) < total:
                raise PartsTaken(key)
            conn.execute(
                "UPDATE smpp_submits SET sms_id = ?, part_text = NULL WHERE account_id = ?"
                " AND concat_key = ? AND sms_id IS NULL",
                (sms_id, account_id, key),
            )

        return then

    async def drop_part(self, account_id: int, smpp_id: str) -> None:
        """Delete one part not linked to a message (one that was refused after all)."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM smpp_submits WHERE account_id = ? AND smpp_id = ? AND sms_id IS NULL",
                (account_id, smpp_id),
            )

        await self.writer.submit(op, atomic=True)

    async def forget_parts(self, account_id: int, key: str) -> None:
        """Delete the parts of a message that could not be stored."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM smpp_submits WHERE account_id = ? AND concat_key = ?"
                " AND sms_id IS NULL",
                (account_id, key),
            )

        await self.writer.submit(op, atomic=True)

    async def submit(self, account_id: int, smpp_id: str) -> Submit | None:
        rows = await self._all(
            "SELECT smpp_id, sms_id, registered_delivery, created, expired FROM smpp_submits"
            " WHERE account_id = ? AND smpp_id = ?",
            (account_id, smpp_id),
        )
        return submit_of(rows[0]) if rows else None

    async def expire(self, now: int) -> int:
        """Messages whose validity_period is over and that no SIM has taken (status 1) are
        deleted, with an EXPIRED receipt for the ids that asked for one; the others (taken in
        time) stop being checked. Returns how many expired."""

        def op(conn: sqlite3.Connection) -> int:
            due = conn.execute(
                "SELECT DISTINCT s.sms_id, m.status FROM smpp_submits s"
                " LEFT JOIN messages m ON m.id = s.sms_id"
                " WHERE s.expires IS NOT NULL AND s.expires <= ? AND s.sms_id > 0",
                (now,),
            ).fetchall()
            gone = 0
            for sms_id, status in due:
                if status == 1:
                    conn.execute("DELETE FROM messages WHERE id = ? AND status = 1", (sms_id,))
                    conn.execute(
                        "INSERT OR IGNORE INTO smpp_outbox(account_id, kind, sms_id, smpp_id,"
                        " status, event_key, created) SELECT account_id, 'receipt', sms_id,"
                        " smpp_id, ?, 'receipt:' || smpp_id, ? FROM smpp_submits"
                        " WHERE sms_id = ? AND (registered_delivery & 3) IN (1, 2)",
                        (EXPIRED, now, sms_id),
                    )
                    conn.execute("UPDATE smpp_submits SET expired = 1 WHERE sms_id = ?", (sms_id,))
                    gone += 1
                conn.execute("UPDATE smpp_submits SET expires = NULL WHERE sms_id = ?", (sms_id,))
            return gone

        return await self.writer.submit(op)

    async def prune_parts(self, before: int) -> int:
        """Forget parts of messages that never got all their parts."""

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM smpp_submits WHERE (sms_id IS NULL OR sms_id = ?) AND created < ?",
                (CLAIMED, before),
            )
            return int(cur.rowcount)

        return await self.writer.submit(op)

    async def cancel(self, account_id: int, sms_id: int) -> bool:
        """Delete an outgoing message no SIM has taken yet (status 1); False if it has moved on
        or is not this account's."""

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "DELETE FROM messages WHERE id = ? AND account_id = ? AND direction = 'out'"
                " AND status = 1",
                (sms_id, account_id),
            )
            return cur.rowcount == 1

        return await self.writer.submit(op)

    # -- outbox ----------------------------------------------------------------------------
    async def enable_mo(self, account_id: int, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO smpp_accounts(account_id, created) VALUES (?, ?)",
                (account_id, now),
            )

        await self.writer.submit(op)

    async def claim(self, account_id: int, limit: int, now: int, until: int) -> list[OutboxRow]:
        """Claim the account's oldest pending rows that no one holds (claimed_until unset or
        past) until `until`, and return them: the caller sends their deliver_sm, and no other
        session or server takes them meanwhile."""

        def op(conn: sqlite3.Connection) -> list[OutboxRow]:
            ids = [
                int(r[0])
                for r in conn.execute(
                    f"SELECT id FROM smpp_outbox WHERE {_CLAIMABLE} ORDER BY id LIMIT ?",
                    (account_id, now, limit),
                )
            ]
            if not ids:
                return []
            marks = ", ".join("?" for _ in ids)
            conn.execute(
                f"UPDATE smpp_outbox SET claimed_until = ? WHERE id IN ({marks})", (until, *ids)
            )
            rows = conn.execute(f"{OUTBOX_ROWS} WHERE o.id IN ({marks}) ORDER BY o.id", ids)
            return [outbox_row(r) for r in rows]

        return await self.writer.submit(op)

    async def pending_accounts(self, account_ids: Sequence[int], now: int) -> set[int]:
        """Which of these accounts have rows to claim now."""
        if not account_ids:
            return set()
        marks = ", ".join("?" for _ in account_ids)
        rows = await self._all(
            f"SELECT DISTINCT account_id FROM smpp_outbox WHERE state = 'pending'"
            f" AND account_id IN ({marks}) AND (claimed_until IS NULL OR claimed_until <= ?)",
            [*account_ids, now],
        )
        return {int(r[0]) for r in rows}

    async def delivered(self, row_id: int, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE smpp_outbox SET state = 'delivered', delivered_at = ?,"
                " attempts = attempts + 1 WHERE id = ?",
                (now, row_id),
            )

        await self.writer.submit(op, atomic=True)

    async def attempted(self, row_id: int, retry_at: int | None) -> None:
        """A deliver_sm refused or unanswered: the row may be claimed again from `retry_at`
        (None: at once, e.g. when its session closed before sending it)."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE smpp_outbox SET attempts = attempts + 1, claimed_until = ? WHERE id = ?",
                (retry_at, row_id),
            )

        await self.writer.submit(op, atomic=True)

    async def prune_outbox(self, before: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM smpp_outbox WHERE state = 'delivered' AND created < ?", (before,)
            )
            return int(cur.rowcount)

        return await self.writer.submit(op)

    async def outbox_rows(self, account_id: int) -> list[dict[str, object]]:
        """Every outbox row of an account (tests and diagnostics)."""
        cols = ("id", "kind", "sms_id", "smpp_id", "status", "state", "attempts")
        rows = await self._all(
            f"SELECT {', '.join(cols)} FROM smpp_outbox WHERE account_id = ? ORDER BY id",
            (account_id,),
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]
