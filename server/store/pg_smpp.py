"""PostgreSQL tables of the SMPP door (pg_schema.py migrations 10 and 20, the twins of SQLite's):
the same methods as sqlite_smpp.SqliteSmppStore, over an open PgStore (its pool and `_write`
transactions). The receipt and MO outbox rows are written by plpgsql triggers in the
transaction of the status change or incoming SMS, as SQLite's triggers do.

Each write is one transaction that `_write` runs again after a deadlock or serialization
conflict, so every op here is written to be run again from its start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from simhive.server.store.base import AfterInsert
from simhive.server.store.pg import Conn, PgStore
from simhive.server.store.sqlite_smpp import (
    CLAIMED,
    EXPIRED,
    OUTBOX_ROWS,
    OutboxRow,
    Part,
    PartsTaken,
    Submit,
    latest_parts,
    outbox_row,
    submit_of,
)


async def _open_parts(conn: Conn, account_id: int, key: str) -> dict[int, Part]:
    """The parts of `key` not linked to a message yet, by part number."""
    rows = await conn.fetch(
        "SELECT part_seq, part_text, smpp_id FROM smpp_submits WHERE account_id = $1"
        " AND concat_key = $2 AND sms_id IS NULL ORDER BY part_seq, id",
        account_id, key,
    )  # fmt: skip
    return latest_parts(rows)


def _count(status: str) -> int:
    """Rows touched, from a command status such as 'DELETE 1'."""
    return int(status.split()[-1])


class PgSmppStore:
    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self.store._all(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> int:
        return _count(await self.store._execute(sql, *args))

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

        async def then(conn: Conn, ids: list[int]) -> None:
            (sms_id,) = ids
            await conn.execute(
                "INSERT INTO smpp_submits(account_id, sms_id, smpp_id, registered_delivery,"
                " source_addr, dest_addr, created, expires) VALUES ($1, $2, $3, $4, $5, $6, $7,"
                " $8)",
                account_id, sms_id, str(sms_id), registered_delivery, source_addr, dest_addr,
                now, expires,
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

        async def op(conn: Conn) -> tuple[str, list[Part] | None]:
            # One set's parts are stored one at a time (until commit): two parts completing
            # the set in concurrent transactions would otherwise each miss the other's row, and
            # the message would never be stored. SQLite's single writer does this by itself.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':smpp:'"
                " || $1::bigint || ':' || $2, 0))",
                account_id, key,
            )  # fmt: skip
            # The id is known before the row is written (nextval), so one INSERT gives it its
            # smpp_id; SQLite updates the row after.
            row_id = int(
                await conn.fetchval("SELECT nextval(pg_get_serial_sequence('smpp_submits', 'id'))")
            )
            smpp_id = f"p{row_id}"
            await conn.execute(
                "INSERT INTO smpp_submits(id, account_id, smpp_id, registered_delivery,"
                " source_addr, dest_addr, concat_key, part_seq, part_text, created, expires)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                row_id, account_id, smpp_id, registered_delivery, source_addr, dest_addr, key,
                seq, text, now, expires,
            )  # fmt: skip
            latest = await _open_parts(conn, account_id, key)
            if len(latest) < total:
                return smpp_id, None
            return smpp_id, [latest[s] for s in sorted(latest)]

        return await self.store._write(op)

    @staticmethod
    def link_parts(account_id: int, key: str, total: int) -> AfterInsert:
        """A follow-up for Gateway.send storing a completed set's message: point its parts at
        the message in the same transaction. Raises PartsTaken (undoing the message) when
        another submit of the same last part stored the message first."""

        async def then(conn: Conn, ids: list[int]) -> None:
            (sms_id,) = ids
            # Taken in key order, so that two submits completing one set queue here instead of
            # both reading the parts as open (SQLite's single writer does this by itself).
            await conn.execute(
                "SELECT id FROM smpp_submits WHERE account_id = $1 AND concat_key = $2"
                " AND sms_id IS NULL ORDER BY id FOR UPDATE",
                account_id, key,
            )  # fmt: skip
            if len(await _open_parts(conn, account_id, key)) < total:
                raise PartsTaken(key)
            await conn.execute(
                "UPDATE smpp_submits SET sms_id = $1, part_text = NULL WHERE account_id = $2"
                " AND concat_key = $3 AND sms_id IS NULL",
                sms_id, account_id, key,
            )  # fmt: skip

        return then

    async def drop_part(self, account_id: int, smpp_id: str) -> None:
        """Delete one part not linked to a message (one that was refused after all)."""
        await self._execute(
            "DELETE FROM smpp_submits WHERE account_id = $1 AND smpp_id = $2 AND sms_id IS NULL",
            account_id, smpp_id,
        )  # fmt: skip

    async def forget_parts(self, account_id: int, key: str) -> None:
        """Delete the parts of a message that could not be stored."""
        await self._execute(
            "DELETE FROM smpp_submits WHERE account_id = $1 AND concat_key = $2"
            " AND sms_id IS NULL",
            account_id, key,
        )  # fmt: skip

    async def submit(self, account_id: int, smpp_id: str) -> Submit | None:
        rows = await self._all(
            "SELECT smpp_id, sms_id, registered_delivery, created, expired FROM smpp_submits"
            " WHERE account_id = $1 AND smpp_id = $2",
            account_id, smpp_id,
        )  # fmt: skip
        return submit_of(rows[0]) if rows else None

    async def expire(self, now: int) -> int:
        """Messages whose validity_period is over and that no SIM has taken (status 1) are
        deleted, with an EXPIRED receipt for the ids that asked for one; the others (taken in
        time) stop being checked. Returns how many expired."""

        async def op(conn: Conn) -> int:
            due = await conn.fetch(
                "SELECT DISTINCT s.sms_id, m.status FROM smpp_submits s"
                " LEFT JOIN messages m ON m.id = s.sms_id"
                " WHERE s.expires IS NOT NULL AND s.expires <= $1 AND s.sms_id > 0",
                now,
            )
            gone = 0
            for sms_id, status in due:
                # Deleted only if still waiting: a SIM that took it meanwhile (another server's
                # lease) keeps it, and it gets its receipt from the status trigger instead.
                deleted = _count(
                    await conn.execute("DELETE FROM messages WHERE id = $1 AND status = 1", sms_id)
                )
                if status == 1 and deleted == 1:
                    await conn.execute(
                        "INSERT INTO smpp_outbox(account_id, kind, sms_id, smpp_id, status,"
                        " event_key, created) SELECT account_id, 'receipt', sms_id, smpp_id, $1,"
                        " 'receipt:' || smpp_id, $2 FROM smpp_submits"
                        " WHERE sms_id = $3 AND (registered_delivery & 3) IN (1, 2)"
                        " ON CONFLICT (event_key) DO NOTHING",
                        EXPIRED, now, sms_id,
                    )  # fmt: skip
                    await conn.execute(
                        "UPDATE smpp_submits SET expired = 1 WHERE sms_id = $1", sms_id
                    )
                    gone += 1
                await conn.execute(
                    "UPDATE smpp_submits SET expires = NULL WHERE sms_id = $1", sms_id
                )
            return gone

        return await self.store._write(op)

    async def prune_parts(self, before: int) -> int:
        """Forget parts of messages that never got all their parts."""
        return await self._execute(
            "DELETE FROM smpp_submits WHERE (sms_id IS NULL OR sms_id = $1) AND created < $2",
            CLAIMED, before,
        )  # fmt: skip

    async def cancel(self, account_id: int, sms_id: int) -> bool:
        """Delete an outgoing message no SIM has taken yet (status 1); False if it has moved on
        or is not this account's."""
        gone = await self._execute(
            "DELETE FROM messages WHERE id = $1 AND account_id = $2 AND direction = 'out'"
            " AND status = 1",
            sms_id, account_id,
        )  # fmt: skip
        return gone == 1

    # -- outbox ----------------------------------------------------------------------------
    async def enable_mo(self, account_id: int, now: int) -> None:
        await self._execute(
            "INSERT INTO smpp_accounts(account_id, created) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            account_id, now,
        )  # fmt: skip

    async def claim(self, account_id: int, limit: int, now: int, until: int) -> list[OutboxRow]:
        """Claim the account's oldest pending rows that no one holds until `until`, and return
        them. SKIP LOCKED: two servers claiming at once each take other rows, and neither waits
        for the other's transaction; a row one of them holds is not offered by the other until
        the claim runs out or is given back."""

        async def op(conn: Conn) -> list[OutboxRow]:
            ids = [
                int(r[0])
                for r in await conn.fetch(
                    "UPDATE smpp_outbox SET claimed_until = $4 WHERE id IN (SELECT id FROM"
                    " smpp_outbox WHERE account_id = $1 AND state = 'pending' AND"
                    " (claimed_until IS NULL OR claimed_until <= $2) ORDER BY id LIMIT $3"
                    " FOR UPDATE SKIP LOCKED) RETURNING id",
                    account_id,
                    now,
                    limit,
                    until,
                )  # fmt: skip
            ]
            if not ids:
                return []
            rows = await conn.fetch(
                f"{OUTBOX_ROWS} WHERE o.id = ANY($1::bigint[]) ORDER BY o.id", ids
            )
            return [outbox_row(r) for r in rows]

        return await self.store._write(op)

    async def pending_accounts(self, account_ids: Sequence[int], now: int) -> set[int]:
        """Which of these accounts have rows to claim now."""
        if not account_ids:
            return set()
        rows = await self._all(
            "SELECT DISTINCT account_id FROM smpp_outbox WHERE state = 'pending'"
            " AND account_id = ANY($1::bigint[])"
            " AND (claimed_until IS NULL OR claimed_until <= $2)",
            list(account_ids), now,
        )  # fmt: skip
        return {int(r[0]) for r in rows}

    async def delivered(self, row_id: int, now: int) -> None:
        await self._execute(
            "UPDATE smpp_outbox SET state = 'delivered', delivered_at = $1,"
            " attempts = attempts + 1 WHERE id = $2",
            now, row_id,
        )  # fmt: skip

    async def attempted(self, row_id: int, retry_at: int | None) -> None:
        """A deliver_sm refused or unanswered: the row may be claimed again from `retry_at`
        (None: at once)."""
        await self._execute(
            "UPDATE smpp_outbox SET attempts = attempts + 1, claimed_until = $1 WHERE id = $2",
            retry_at, row_id,
        )  # fmt: skip

    async def prune_outbox(self, before: int) -> int:
        return await self._execute(
            "DELETE FROM smpp_outbox WHERE state = 'delivered' AND created < $1", before
        )

    async def outbox_rows(self, account_id: int) -> list[dict[str, object]]:
        """Every outbox row of an account (tests and diagnostics)."""
        cols = ("id", "kind", "sms_id", "smpp_id", "status", "state", "attempts")
        rows = await self._all(
            f"SELECT {', '.join(cols)} FROM smpp_outbox WHERE account_id = $1 ORDER BY id",
            account_id,
        )
        return [dict(zip(cols, r, strict=True)) for r in rows]
