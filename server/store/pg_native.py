"""The PostgreSQL twin of sqlite_native.py (tables of pg_schema migration 13): API keys, quotas
counted in the storing transaction, status history and the native message views.

Several servers may send for one account at once, and nothing serializes them as SQLite's
single writer does: a send's meters are upserted (`... ON CONFLICT DO UPDATE ... RETURNING used`)
before its messages are inserted, so the row lock of each counter orders concurrent sends, each
sees the count the previous one committed, and a send past a limit rolls back with nothing
written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.core.errors import Conflict, NotFound
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
from simhive.server.store.sqlite_native import (
    KEY_COLS,
    SMPP_LOGIN,
    _key_row,
    _taken,
    account_limits,
    smpp_login,
)
from simhive.server.store.sqlite_rows import ACCOUNT_COLS, MESSAGE_COLS, account_row, message_row

T = TypeVar("T")
Conn = asyncpg.Connection

_KEY_WIDTH = len(KEY_COLS.split(","))
# As pg.py's _INSERT_MANY, with the validity: one statement for all rows, ids in input order.
_INSERT_METERED = (
    "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status, urgent,"
    " customerid, created, timetosend, due, status_changed, pool_id, valid_until)"
    " SELECT a, d, 'out', s, b, sim, 1, u, c, $10, t, COALESCE(t, $10), $10, p, $11"
    " FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::int[],"
    " $7::bigint[], $8::bigint[], $9::bigint[]) WITH ORDINALITY"
    " AS r(a, d, s, b, sim, u, c, t, p, n) ORDER BY n RETURNING id"
)
_UNSENT = [int(Status.NEW), int(Status.TAKEN), int(Status.QUEUED)]


async def count_on_meters(conn: Conn, meters: Sequence[Meter], n: int) -> None:
    """Add `n` to every meter, raising QuotaExceeded (the transaction then rolls back) when one
    passes its limit."""
    await count_each(conn, [(m, n) for m in meters])


async def count_each(conn: Conn, counts: Sequence[tuple[Meter, int]]) -> None:
    """Add each n to its meter, as count_on_meters. Meters are taken in one order so two sends
    never wait on each other's."""
    if any(m.from_account for m, _ in counts):
        stored = {
            int(r[0]): (r[1], r[2])
            for r in await conn.fetch(
                "SELECT account_id, daily_quota, monthly_quota FROM account_quotas"
                " WHERE account_id = ANY($1::bigint[])",
                sorted({m.account_id for m, _ in counts if m.from_account}),
            )
        }
        limited = account_limits([m for m, _ in counts], stored.get)
        counts = [(m, n) for m, (_, n) in zip(limited, counts, strict=True)]
    for m, n in sorted(counts, key=lambda c: (c[0].account_id, c[0].key_id, c[0].period)):
        used = int(
            await conn.fetchval(
                "INSERT INTO quota_usage(account_id, key_id, period, used) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (account_id, key_id, period)"
                " DO UPDATE SET used = quota_usage.used + excluded.used RETURNING used",
                m.account_id,
                m.key_id,
                m.period,
                n,
            )  # fmt: skip
        )
        if m.limit is not None and used > m.limit:
            raise QuotaExceeded(m, used - n)


class PgNativeStore(NativeStore):
    """Mixed into PgStore; needs its `_write`, `_all` and `_one`."""

    if TYPE_CHECKING:

        async def _write(
            self, op: Callable[[Conn], Awaitable[T]], *, durable: bool = True
        ) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

        async def _one(self, sql: str, *args: Any) -> asyncpg.Record | None: ...

    # -- API keys --------------------------------------------------------------------------
    async def create_api_key(self, key: NewApiKey, now: int) -> ApiKey:
        async def op(conn: Conn) -> int:
            try:
                return int(
                    await conn.fetchval(
                        "INSERT INTO api_keys(account_id, name, key_hash, prefix, scopes,"
                        " allow_get_send, rate_per_minute, daily_quota, monthly_quota, created,"
                        " smpp_system_id, smpp_password_hash, smpp_pool)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                        " RETURNING id",
                        key.account_id,
                        key.name,
                        key.key_hash,
                        key.prefix,
                        ",".join(key.scopes),
                        int(key.allow_get_send),
                        key.rate_per_minute,
                        key.daily_quota,
                        key.monthly_quota,
                        now,
                        key.smpp_system_id,
                        key.smpp_password_hash,
                        key.smpp_pool,
                    )  # fmt: skip
                )
            except asyncpg.UniqueViolationError as exc:
                raise _taken(key, exc.constraint_name == "api_keys_smpp") from None

        key_id = await self._write(op)
        return ApiKey(key_id, key.account_id, key.name, key.prefix, key.scopes,
                      key.allow_get_send, key.rate_per_minute, key.daily_quota,
                      key.monthly_quota, now, None, None, key.smpp_system_id,
                      key.smpp_pool)  # fmt: skip

    async def api_key_by_hash(self, key_hash: str) -> tuple[ApiKey, Account] | None:
        row = await self._one(
            f"SELECT {KEY_COLS}, {ACCOUNT_COLS} FROM api_keys k"
            " JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1 AND k.revoked IS NULL",
            key_hash,
        )
        if row is None:
            return None
        values = tuple(row)
        return _key_row(values), account_row(values[_KEY_WIDTH:])

    async def smpp_login(self, system_id: str) -> tuple[SmppLogin, Account] | None:
        row = await self._one(f"{SMPP_LOGIN} AND lower(k.smpp_system_id) = lower($1)", system_id)
        return smpp_login(row) if row is not None else None

    async def list_api_keys(self, account_id: int) -> list[ApiKey]:
        rows = await self._all(
            f"SELECT {KEY_COLS} FROM api_keys k WHERE account_id = $1 ORDER BY id", account_id
        )
        return [_key_row(r) for r in rows]

    async def revoke_api_key(self, account_id: int, key_id: int, now: int) -> ApiKey:
        async def op(conn: Conn) -> ApiKey:
            row = await conn.fetchrow(
                f"UPDATE api_keys k SET revoked = $1 WHERE id = $2 AND account_id = $3"
                f" AND revoked IS NULL RETURNING {KEY_COLS}",
                now, key_id, account_id,
            )  # fmt: skip
            if row is None:
                raise NotFound("API key not found")
            return _key_row(row)

        return await self._write(op)

    async def touch_api_key(self, key_id: int, now: int) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute("UPDATE api_keys SET last_used = $1 WHERE id = $2", now, key_id)

        # Losing a last-use stamp in a crash loses nothing: no wait for the WAL flush.
        await self._write(op, durable=False)

    # -- quotas ----------------------------------------------------------------------------
    async def account_quota(self, account_id: int) -> tuple[int | None, int | None]:
        row = await self._one(
            "SELECT daily_quota, monthly_quota FROM account_quotas WHERE account_id = $1",
            account_id,
        )
        return (row[0], row[1]) if row else (None, None)

    async def set_account_quota(
        self, account_id: int, daily: int | None, monthly: int | None
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO account_quotas(account_id, daily_quota, monthly_quota)"
                " VALUES ($1, $2, $3) ON CONFLICT (account_id) DO UPDATE SET"
                " daily_quota = excluded.daily_quota, monthly_quota = excluded.monthly_quota",
                account_id, daily, monthly,
            )  # fmt: skip

        await self._write(op)

    async def quota_used(self, account_id: int, key_id: int, periods: Sequence[str]) -> list[int]:
        rows = await self._all(
            "SELECT period, used FROM quota_usage WHERE account_id = $1 AND key_id = $2"
            " AND period = ANY($3::text[])",
            account_id, key_id, list(periods),
        )  # fmt: skip
        found = {str(r[0]): int(r[1]) for r in rows}
        return [found.get(p, 0) for p in periods]

    async def insert_metered(
        self,
        messages: Sequence[NewMessage],
        now: int,
        valid_until: int | None,
        meters: Sequence[Meter],
    ) -> list[int]:
        if not messages:
            return []
        columns = (
            [m.account_id for m in messages],
            [m.device_id for m in messages],
            [m.sendto for m in messages],
            [m.body for m in messages],
            [m.sim for m in messages],
            [int(m.urgent) for m in messages],
            [m.customerid for m in messages],
            [m.timetosend for m in messages],
            [m.pool_id for m in messages],
        )

        async def op(conn: Conn) -> list[int]:
            await count_on_meters(conn, meters, len(messages))
            found = await conn.fetch(_INSERT_METERED, *columns, now, valid_until)
            return sorted(int(r[0]) for r in found)

        return await self._write(op)

    # -- message views ---------------------------------------------------------------------
    async def query_messages(self, q: MessageQuery) -> list[Message]:
        where, params = message_query_where(q, lambda n: f"${n}")
        rows = await self._all(
            f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
            f" WHERE {where} ORDER BY m.id DESC LIMIT ${len(params) + 1}",
            *params, q.limit,
        )  # fmt: skip
        return [message_row(r) for r in rows]

    async def message_history(self, sms_id: int) -> list[StatusChange]:
        # Ties of `at` (two changes in one transaction) by physical order, which is the order
        # written unless free space was reused in between; the table has no id column to order
        # by on either engine (SQLite uses its rowid), and both must keep the same columns.
        rows = await self._all(
            "SELECT status, at, device_id, sim, code FROM message_history WHERE sms_id = $1"
            " ORDER BY at, ctid",
            sms_id,
        )
        return [StatusChange(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows]

    async def prune_message_history(self, before: int, batch: int) -> int:
        # As on SQLite: candidates by the index on `at`, whole histories of settled messages.
        async def op(conn: Conn) -> int:
            done = await conn.execute(
                "DELETE FROM message_history WHERE sms_id IN (SELECT h.sms_id"
                " FROM message_history h LEFT JOIN messages m ON m.id = h.sms_id"
                " WHERE h.at < $1 AND (m.id IS NULL OR m.status_changed < $1) LIMIT $2)",
                before, batch,
            )  # fmt: skip
            return int(done.split()[-1])

        return await self._write(op)

    async def message_parts(self, sms_id: int) -> list[PartReport]:
        rows = await self._all(
            "SELECT part_index, reference FROM message_parts WHERE sms_id = $1 ORDER BY part_index",
            sms_id,
        )
        return [PartReport(int(r[0]), r[1]) for r in rows]

    async def valid_until(self, sms_id: int) -> int | None:
        row = await self._one("SELECT valid_until FROM messages WHERE id = $1", sms_id)
        return row[0] if row else None

    async def cancel_message(self, account_id: int, sms_id: int, now: int) -> int | None:
        async def op(conn: Conn) -> int | None:
            # The row lock orders the cancel against a lease or commit of the same message.
            row = await conn.fetchrow(
                "SELECT status, device_id FROM messages WHERE id = $1 AND account_id = $2"
                " AND direction = 'out' FOR UPDATE",
                sms_id, account_id,
            )  # fmt: skip
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
            await conn.execute(
                "UPDATE messages SET status = $1, status_changed = $2, lease_id = NULL,"
                " lease_expires = NULL WHERE id = $3",
                int(Status.CANCELLED), now, sms_id,
            )  # fmt: skip
            return int(row[1]) if status == Status.TAKEN and row[1] is not None else None

        return await self._write(op)

    async def expire_messages(self, now: int) -> int:
        # A read first, as on SQLite: the sweep runs every second on every server.
        due = await self._one(
            "SELECT 1 FROM messages WHERE valid_until IS NOT NULL AND status = 1"
            " AND valid_until < $1 LIMIT 1",
            now,
        )
        if due is None:
            return 0

        async def op(conn: Conn) -> int:
            # A row a lease holds is waited for and then re-checked (status = 1), so a message
            # taken meanwhile is left alone.
            done = await conn.execute(
                "UPDATE messages SET status = $1, status_changed = $2, failure_code = 'expired'"
                " WHERE valid_until IS NOT NULL AND status = 1 AND valid_until < $2",
                int(Status.EXPIRED), now,
            )  # fmt: skip
            return int(done.split()[-1])

        return await self._write(op)

    async def sim_loads(self, device_id: int, since: int) -> list[SimLoad]:
        rows = await self._all(
            "SELECT sim, COUNT(*) FILTER (WHERE status = ANY($1::int[])),"
            " COUNT(*) FILTER (WHERE senttime >= $2),"
            " COUNT(*) FILTER (WHERE status IN (9, 10, 11, 12, 100, 101)"
            " AND status_changed >= $2)"
            " FROM messages WHERE device_id = $3 AND direction = 'out'"
            " AND (status = ANY($1::int[]) OR status_changed >= $2) GROUP BY sim ORDER BY sim",
            _UNSENT, since, device_id,
        )  # fmt: skip
        return [SimLoad(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]
