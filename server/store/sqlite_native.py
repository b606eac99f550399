"""SQLite implementation of NativeStore (tables of migration 13), mixed into SqliteStore."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from simhive.server.core.errors import AlreadyExists, Conflict, NotFound
from simhive.server.core.models import Account, Message, NewMessage
from simhive.server.core.native_models import (
    ApiKey,
    MessageQuery,
    Meter,
    NewApiKey,
    PartReport,
    QuotaExceeded,
    SimLoad,
    SmppLogin,
    StatusChange,
)
from simhive.server.core.status import Status
from simhive.server.store.native_base import NativeStore, message_query_where
from simhive.server.store.sqlite_rows import (
    ACCOUNT_COLS,
    MESSAGE_COLS,
    account_row,
    columns,
    message_row,
    row_reader,
)

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

KEY_COLS = columns(ApiKey, "k.")
_key_row = row_reader(ApiKey, scopes=lambda s: tuple(x for x in str(s).split(",") if x))
# The key with its SMPP login (an SMPP bind), and its account.
SMPP_LOGIN = (
    f"SELECT {KEY_COLS}, k.smpp_password_hash, k.key_hash, {ACCOUNT_COLS} FROM api_keys k"
    " JOIN accounts a ON a.id = k.account_id WHERE k.revoked IS NULL"
    " AND k.smpp_password_hash IS NOT NULL"
)


def _taken(key: NewApiKey, smpp: bool) -> AlreadyExists:
    """The unique index a new key ran into, as the error its creator reads."""
    if smpp:
        return AlreadyExists(f"SMPP system_id {key.smpp_system_id} is taken by another key")
    return AlreadyExists(f"A key named {key.name!r} exists already")


def smpp_login(row: Any) -> tuple[SmppLogin, Account]:
    width = len(KEY_COLS.split(","))
    return SmppLogin(_key_row(row), str(row[width]), str(row[width + 1])), account_row(
        row[width + 2 :]
    )


# Rows travel as one JSON array (see SqliteStore.insert_messages for why); valid_until added.
_INSERT_JSON = (
    "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status, urgent,"
    " customerid, created, timetosend, due, status_changed, pool_id, valid_until)"
    " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), 'out',"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), 1,"
    " json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]'),"
    " json_extract(value, '$[8]'), json_extract(value, '$[9]'), json_extract(value, '$[10]'),"
    " json_extract(value, '$[11]'), json_extract(value, '$[12]') FROM json_each(?) ORDER BY key"
)
_INSERT_ROW = (
    "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status, urgent,"
    " customerid, created, timetosend, due, status_changed, pool_id, valid_until)"
    " VALUES (?, ?, 'out', ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UNSENT = (Status.NEW, Status.TAKEN, Status.QUEUED)


def _seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    return int(row[0]) if row else 0


def account_limits(
    meters: Sequence[Meter], read: Callable[[int], tuple[int | None, int | None] | None]
) -> list[Meter]:
    """The meters with the limits of those `from_account` filled in from the account's stored
    quotas, which `read(account_id)` gives as (daily, monthly), None without a row; both engines
    call it inside their storing transaction."""
    out: list[Meter] = []
    stored: dict[int, tuple[int | None, int | None]] = {}
    for m in meters:
        if m.from_account:
            if m.account_id not in stored:
                stored[m.account_id] = read(m.account_id) or (None, None)
            daily, monthly = stored[m.account_id]
            m = replace(m, limit=daily if m.period.startswith("d:") else monthly)
        out.append(m)
    return out


def meter_check(conn: sqlite3.Connection, meters: Sequence[Meter], n: int) -> None:
    """Count `n` messages on every meter, or raise QuotaExceeded (in the storing transaction)."""

    def read(account_id: int) -> tuple[int | None, int | None] | None:
        row = conn.execute(
            "SELECT daily_quota, monthly_quota FROM account_quotas WHERE account_id = ?",
            (account_id,),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    meters = account_limits(meters, read)
    for m in meters:
        if m.limit is None:
            continue
        row = conn.execute(
            "SELECT used FROM quota_usage WHERE account_id = ? AND key_id = ? AND period = ?",
            (m.account_id, m.key_id, m.period),
        ).fetchone()
        used = int(row[0]) if row else 0
        if used + n > m.limit:
            raise QuotaExceeded(m, used)
    if meters:  # one statement for all meters: each statement costs the writer a GIL hand-over
        conn.execute(
            "INSERT INTO quota_usage(account_id, key_id, period, used) VALUES "
            + ",".join(["(?, ?, ?, ?)"] * len(meters))
            + " ON CONFLICT(account_id, key_id, period) DO UPDATE SET used = used + excluded.used",
            [v for m in meters for v in (m.account_id, m.key_id, m.period, n)],
        )


class SqliteNativeStore(NativeStore):
    """Needs SqliteStore's `writer` and `_all`."""

    writer: GroupCommitWriter

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore

    # -- API keys --------------------------------------------------------------------------
    async def create_api_key(self, key: NewApiKey, now: int) -> ApiKey:
        def op(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    "INSERT INTO api_keys(account_id, name, key_hash, prefix, scopes,"
                    " allow_get_send, rate_per_minute, daily_quota, monthly_quota, created,"
                    " smpp_system_id, smpp_password_hash, smpp_pool)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key.account_id, key.name, key.key_hash, key.prefix, ",".join(key.scopes),
                     int(key.allow_get_send), key.rate_per_minute, key.daily_quota,
                     key.monthly_quota, now, key.smpp_system_id, key.smpp_password_hash,
                     key.smpp_pool),
                )  # fmt: skip
            except sqlite3.IntegrityError as exc:
                raise _taken(key, "smpp" in str(exc)) from None
            return int(cur.lastrowid or 0)

        key_id = await self.writer.submit(op)
        return ApiKey(key_id, key.account_id, key.name, key.prefix, key.scopes,
                      key.allow_get_send, key.rate_per_minute, key.daily_quota,
                      key.monthly_quota, now, None, None, key.smpp_system_id,
                      key.smpp_pool)  # fmt: skip

    async def api_key_by_hash(self, key_hash: str) -> tuple[ApiKey, Account] | None:
        rows = await self._all(
            f"SELECT {KEY_COLS}, {ACCOUNT_COLS} FROM api_keys k"
            " JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = ? AND k.revoked IS NULL",
            (key_hash,),
        )
        if not rows:
            return None
        width = len(KEY_COLS.split(","))
        return _key_row(rows[0]), account_row(rows[0][width:])

    async def smpp_login(self, system_id: str) -> tuple[SmppLogin, Account] | None:
        rows = await self._all(f"{SMPP_LOGIN} AND k.smpp_system_id = ?", (system_id,))
        return smpp_login(rows[0]) if rows else None

    async def list_api_keys(self, account_id: int) -> list[ApiKey]:
        rows = await self._all(
            f"SELECT {KEY_COLS} FROM api_keys k WHERE account_id = ? ORDER BY id", (account_id,)
        )
        return [_key_row(r) for r in rows]

    async def revoke_api_key(self, account_id: int, key_id: int, now: int) -> ApiKey:
        def op(conn: sqlite3.Connection) -> ApiKey:
            cur = conn.execute(
                "UPDATE api_keys SET revoked = ? WHERE id = ? AND account_id = ?"
                " AND revoked IS NULL",
                (now, key_id, account_id),
            )
            if not cur.rowcount:
                raise NotFound("API key not found")
            row = conn.execute(
                f"SELECT {KEY_COLS} FROM api_keys k WHERE id = ?", (key_id,)
            ).fetchone()
            return _key_row(row)

        return await self.writer.submit(op)

    async def touch_api_key(self, key_id: int, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE api_keys SET last_used = ? WHERE id = ?", (now, key_id))

        await self.writer.submit(op, atomic=True)

    # -- quotas ----------------------------------------------------------------------------
    async def account_quota(self, account_id: int) -> tuple[int | None, int | None]:
        rows = await self._all(
            "SELECT daily_quota, monthly_quota FROM account_quotas WHERE account_id = ?",
            (account_id,),
        )
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    async def set_account_quota(
        self, account_id: int, daily: int | None, monthly: int | None
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO account_quotas(account_id, daily_quota, monthly_quota)"
                " VALUES (?, ?, ?) ON CONFLICT(account_id) DO UPDATE SET"
                " daily_quota = excluded.daily_quota, monthly_quota = excluded.monthly_quota",
                (account_id, daily, monthly),
            )

        await self.writer.submit(op, atomic=True)

    async def quota_used(self, account_id: int, key_id: int, periods: Sequence[str]) -> list[int]:
        out = []
        for period in periods:
            rows = await self._all(
                "SELECT used FROM quota_usage WHERE account_id = ? AND key_id = ? AND period = ?",
                (account_id, key_id, period),
            )
            out.append(int(rows[0][0]) if rows else 0)
        return out

    async def insert_metered(
        self,
        messages: Sequence[NewMessage],
        now: int,
        valid_until: int | None,
        meters: Sequence[Meter],
    ) -> list[int]:
        rows = [
            (m.account_id, m.device_id, m.sendto, m.body, m.sim, 1 if m.urgent else 0,
             m.customerid, now, m.timetosend, now if m.timetosend is None else m.timetosend,
             now, m.pool_id, valid_until)
            for m in messages
        ]  # fmt: skip
        # NUL is the one character the JSON route could truncate (as in insert_messages).
        as_json = (
            json.dumps(rows, ensure_ascii=False)
            if len(rows) > 1 and not any("\x00" in r[3] for r in rows)
            else None
        )

        def op(conn: sqlite3.Connection) -> list[int]:
            meter_check(conn, meters, len(rows))
            before = _seq(conn)
            if as_json is not None:
                conn.execute(_INSERT_JSON, (as_json,))
            else:
                conn.executemany(_INSERT_ROW, rows)
            after = _seq(conn)
            if after - before == len(rows):
                return list(range(before + 1, after + 1))
            found = conn.execute(
                "SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?", (before, len(rows))
            )
            return [int(r[0]) for r in found]

        if not rows:
            return []
        return await self.writer.submit(op)

    # -- message views ---------------------------------------------------------------------
    async def query_messages(self, q: MessageQuery) -> list[Message]:
        where, params = message_query_where(q, lambda _: "?")
        rows = await self._all(
            f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
            f" WHERE {where} ORDER BY m.id DESC LIMIT ?",
            [*params, q.limit],
        )
        return [message_row(r) for r in rows]

    async def message_history(self, sms_id: int) -> list[StatusChange]:
        rows = await self._all(
            "SELECT status, at, device_id, sim, code FROM message_history WHERE sms_id = ?"
            " ORDER BY at, rowid",
            (sms_id,),
        )
        return [StatusChange(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows]

    async def prune_message_history(self, before: int, batch: int) -> int:
        # Candidates come from the history's own index on `at` (a message's rows are never
        # newer than its last change), so a run reads old rows, not every message.
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM message_history WHERE sms_id IN (SELECT h.sms_id"
                " FROM message_history h LEFT JOIN messages m ON m.id = h.sms_id"
                " WHERE h.at < ? AND (m.id IS NULL OR m.status_changed < ?) LIMIT ?)",
                (before, before, batch),
            )
            return int(cur.rowcount)

        return await self.writer.submit(op, atomic=True)

    async def message_parts(self, sms_id: int) -> list[PartReport]:
        rows = await self._all(
            "SELECT part_index, reference FROM message_parts WHERE sms_id = ? ORDER BY part_index",
            (sms_id,),
        )
        return [PartReport(int(r[0]), r[1]) for r in rows]

    async def valid_until(self, sms_id: int) -> int | None:
        rows = await self._all("SELECT valid_until FROM messages WHERE id = ?", (sms_id,))
        return rows[0][0] if rows else None

    async def cancel_message(self, account_id: int, sms_id: int, now: int) -> int | None:
        def op(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "SELECT status, device_id FROM messages WHERE id = ? AND account_id = ?"
                " AND direction = 'out'",
                (sms_id, account_id),
            ).fetchone()
            if row is None:
                raise NotFound("Message not found")
            status = int(row[0])
            if status not in (Status.NEW, Status.TAKEN):
                raise Conflict(
                    f"Message {sms_id} cannot be cancelled: its status is {status}"
                    " (only messages no agent has committed to, status 1 or 2)",
                    details={"status": status},
                )
            # Clearing the lease makes a late commit of it rejected: the agent drops it.
            conn.execute(
                "UPDATE messages SET status = ?, status_changed = ?, lease_id = NULL,"
                " lease_expires = NULL WHERE id = ?",
                (Status.CANCELLED, now, sms_id),
            )
            return int(row[1]) if status == Status.TAKEN and row[1] is not None else None

        return await self.writer.submit(op)

    async def expire_messages(self, now: int) -> int:
        # A read first (the partial index holds only unsent messages with a validity): the sweep
        # runs every second, and an empty write would still take the write lock each time.
        due = await self._all(
            "SELECT 1 FROM messages WHERE valid_until IS NOT NULL AND status = 1"
            " AND valid_until < ? LIMIT 1",
            (now,),
        )
        if not due:
            return 0

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE messages SET status = ?, status_changed = ?, failure_code = 'expired'"
                " WHERE valid_until IS NOT NULL AND status = 1 AND valid_until < ?",
                (Status.EXPIRED, now, now),
            )
            return int(cur.rowcount)

        return await self.writer.submit(op, atomic=True)

    async def sim_loads(self, device_id: int, since: int) -> list[SimLoad]:
        marks = ",".join("?" * len(_UNSENT))
        rows = await self._all(
            "SELECT sim, SUM(CASE WHEN status IN (" + marks + ") THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN senttime >= ? THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN status IN (9, 10, 11, 12, 100, 101) AND status_changed >= ?"
            " THEN 1 ELSE 0 END)"
            " FROM messages WHERE device_id = ? AND direction = 'out'"
            " AND (status IN (" + marks + ") OR status_changed >= ?) GROUP BY sim ORDER BY sim",
            (*_UNSENT, since, since, device_id, *_UNSENT, since),
        )
        return [SimLoad(int(r[0]), int(r[1] or 0), int(r[2] or 0), int(r[3] or 0)) for r in rows]
