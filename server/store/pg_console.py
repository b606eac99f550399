"""The console's and /metrics' queries on the PostgreSQL store: the twin of sqlite_console.py.

Reads go through a small pool of their own, opened read-only, so a scan (a metrics scrape counts
every message) never waits for, or holds, one of the API's connections; the two writes (cancel,
redeliver) are `_write` transactions on the store's pool like every other write.

Times stay what they are in the tables, integer microseconds since the epoch (UTC): an hour of the
traffic chart is `senttime / 3600000000` as on SQLite, never a timestamp cast, so neither the
server's nor the session's TimeZone setting moves a bar. Where SQLite's SQL differs: `SUM(x = y)`
is `COUNT(*) FILTER (WHERE ...)`, the two-argument MAX is GREATEST, and the text search is ILIKE
(SQLite's LIKE ignores case; PostgreSQL's does not).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from simhive.server.core.models import Message
from simhive.server.store.base import StoreError
from simhive.server.store.console_base import (
    FROM_MESSAGES_SQL,
    HOUR_US,
    MESSAGE_COUNTS_SQL,
    OUTBOX_SQL,
    POOL_WAITING_SQL,
    US,
    ConsoleFilter,
    ConsoleStore,
    Conversation,
    HourCount,
    MetricsSnapshot,
    OutboxRow,
    PartRow,
    SessionRow,
    SimKey,
    histogram,
    like_pattern,
)
from simhive.server.store.pg import _UNAVAILABLE, Conn, PgStore
from simhive.server.store.sqlite_rows import message_row

# Connections of the read pool, per server: a page's few queries and a scrape at a time. Counted
# against the database's max_connections with the store's own pool (pg.POOL_SIZE).
READ_POOL_SIZE = 2


def _histogram_sql(expr: str, bounds: tuple[float, ...], where: str) -> str:
    counts = "".join(f", COUNT(*) FILTER (WHERE {expr} <= {int(b * US)})" for b in bounds)
    return f"SELECT COUNT(*), COALESCE(SUM({expr}), 0){counts} FROM messages WHERE {where}"


class PgConsoleStore(ConsoleStore):
    def __init__(self, store: PgStore, pool_size: int = READ_POOL_SIZE) -> None:
        self.store = store
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        # Opened after the store (which migrated), on its schema; read-only, so a query here
        # can never change a row.
        settings = {**self.store._settings(), "default_transaction_read_only": "on"}
        try:
            self._pool = await asyncpg.create_pool(
                self.store.url, min_size=1, max_size=self.pool_size, server_settings=settings
            )
        except _UNAVAILABLE as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _reads(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("console store is not open")
        return self._pool

    async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return list(await self._reads().fetch(sql, *args))
        except _UNAVAILABLE as exc:
            raise StoreError(str(exc)) from exc

    async def _changed(self, sql: str, *args: Any) -> bool:
        """Run one UPDATE in a store transaction; True if it changed exactly one row."""

        async def op(conn: Conn) -> bool:
            return str(await conn.execute(sql, *args)).split()[-1] == "1"

        return await self.store._write(op)

    # -- overview --------------------------------------------------------------------------
    async def queue_depth(self, account_id: int) -> dict[SimKey, int]:
        rows = await self._all(
            "SELECT device_id, sim, COUNT(*) FROM messages WHERE account_id = $1"
            " AND status IN (1, 2, 3) AND device_id IS NOT NULL GROUP BY device_id, sim",
            account_id,
        )
        return {(int(r[0]), int(r[1])): int(r[2]) for r in rows}

    async def counts_since(self, account_id: int, since: int) -> dict[SimKey, dict[int, int]]:
        rows = await self._all(
            "SELECT device_id, sim, status, COUNT(*) FROM messages WHERE account_id = $1"
            " AND created >= $2 AND direction = 'out' AND device_id IS NOT NULL"
            " GROUP BY device_id, sim, status",
            account_id, since,
        )  # fmt: skip
        out: dict[SimKey, dict[int, int]] = {}
        for device_id, sim, status, n in rows:
            out.setdefault((int(device_id), int(sim)), {})[int(status)] = int(n)
        return out

    async def sim_readiness_of(self, device_ids: list[int]) -> dict[SimKey, tuple[bool, str]]:
        if not device_ids:
            return {}
        rows = await self._all(
            "SELECT device_id, slot, ready, reason FROM sim_ready"
            " WHERE device_id = ANY($1::bigint[])",
            device_ids,
        )
        return {(int(r[0]), int(r[1])): (bool(r[2]), str(r[3])) for r in rows}

    # -- messages --------------------------------------------------------------------------
    async def search_messages(self, flt: ConsoleFilter) -> list[Message]:
        params: list[Any] = [flt.account_id]
        clauses = ["m.account_id = $1"]

        def add(clause: str, value: Any) -> None:
            params.append(value)
            clauses.append(clause.format(f"${len(params)}"))

        if flt.status:
            add("m.status = ANY({}::int[])", list(flt.status))
        for clause, value in (
            ("m.device_id = {}", flt.device_id),
            ("m.direction = {}", flt.direction),
            ("m.created >= {}", flt.created_from),
            ("m.created <= {}", flt.created_to),
            ("m.id < {}", flt.before_id),
        ):
            if value is not None:
                add(clause, value)
        if flt.number:
            add("m.sendto ILIKE {} ESCAPE '\\'", like_pattern(flt.number))
        if flt.search:
            add("m.body ILIKE {} ESCAPE '\\'", like_pattern(flt.search))
        rows = await self._all(
            f"{FROM_MESSAGES_SQL} WHERE {' AND '.join(clauses)}"
            f" ORDER BY m.id DESC LIMIT ${len(params) + 1}",
            *params, flt.limit,
        )  # fmt: skip
        return [message_row(r) for r in rows]

    async def message_parts(self, sms_id: int) -> list[PartRow]:
        rows = await self._all(
            "SELECT part_index, reference, report_status, reported_at FROM message_parts"
            " WHERE sms_id = $1 ORDER BY part_index",
            sms_id,
        )
        return [PartRow(*r) for r in rows]

    async def message_outbox(self, sms_id: int) -> list[OutboxRow]:
        rows = await self._all(f"{OUTBOX_SQL} WHERE w.sms_id = $1 ORDER BY w.id", sms_id)
        return [OutboxRow(*r) for r in rows]

    async def cancel_message(
        self, account_id: int, sms_id: int, status: int, reason: str, now: int
    ) -> bool:
        # `lease_id IS NULL` is checked on the row as the UPDATE locks it: a lease taken
        # meanwhile by any server wins, and this answers False.
        return await self._changed(
            "UPDATE messages SET status = $1, status_changed = $2, failure_code = 'cancelled',"
            " failure_reason = $3 WHERE id = $4 AND account_id = $5 AND direction = 'out'"
            " AND status = 1 AND lease_id IS NULL",
            status, now, reason, sms_id, account_id,
        )  # fmt: skip

    # -- inbox -----------------------------------------------------------------------------
    async def conversations(self, account_id: int, limit: int) -> list[Conversation]:
        rows = await self._all(
            "SELECT m.sendto, m.id, m.body, m.created, c.n FROM (SELECT sendto,"
            " MAX(id) AS last, COUNT(*) AS n FROM messages WHERE account_id = $1 AND status = 5"
            " GROUP BY sendto) c JOIN messages m ON m.id = c.last ORDER BY m.id DESC LIMIT $2",
            account_id, limit,
        )  # fmt: skip
        return [Conversation(str(r[0]), int(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]

    async def conversation(self, account_id: int, number: str, limit: int) -> list[Message]:
        rows = await self._all(
            f"{FROM_MESSAGES_SQL} WHERE m.account_id = $1 AND m.sendto = $2"
            " ORDER BY m.id DESC LIMIT $3",
            account_id, number, limit,
        )  # fmt: skip
        return [message_row(r) for r in reversed(rows)]

    # -- webhooks --------------------------------------------------------------------------
    async def outbox(self, account_id: int, state: str | None, limit: int) -> list[OutboxRow]:
        rows = await self._all(
            f"{OUTBOX_SQL} JOIN devices d ON d.id = w.device_id WHERE d.account_id = $1"
            " AND ($2::text IS NULL OR w.state = $2) ORDER BY w.id DESC LIMIT $3",
            account_id, state or None, limit,
        )  # fmt: skip
        return [OutboxRow(*r) for r in rows]

    async def redeliver(self, account_id: int, row_id: int, now: int) -> bool:
        # attempts back to 0: the row gets the whole retry schedule again. The sender is woken
        # by the caller; on another server it finds the row by its due time.
        return await self._changed(
            "UPDATE webhook_outbox SET state = 'pending', next_attempt = $1, attempts = 0,"
            " delivered_at = NULL WHERE id = $2 AND state IN ('delivered', 'dead')"
            " AND device_id IN (SELECT id FROM devices WHERE account_id = $3)",
            now, row_id, account_id,
        )  # fmt: skip

    # -- login sessions --------------------------------------------------------------------
    async def _run(self, sql: str, *args: Any) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(sql, *args)

        await self.store._write(op)

    async def add_session(
        self, token_hash: str, account_id: int, csrf: str, now: int, expired_before: int
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute("DELETE FROM console_sessions WHERE used < $1", expired_before)
            await conn.execute(
                "INSERT INTO console_sessions(token_hash, account_id, csrf, started, used)"
                " VALUES ($1, $2, $3, $4, $4)",
                token_hash, account_id, csrf, now,
            )  # fmt: skip

        await self.store._write(op)

    async def session(self, token_hash: str) -> SessionRow | None:
        rows = await self._all(
            "SELECT account_id, csrf, started, used, flash FROM console_sessions"
            " WHERE token_hash = $1",
            token_hash,
        )
        return SessionRow(*rows[0]) if rows else None

    async def touch_session(self, token_hash: str, now: int) -> None:
        # Not waiting for the WAL flush: a lost touch only ends the session a little earlier.
        await self.store._execute(
            "UPDATE console_sessions SET used = GREATEST(used, $1) WHERE token_hash = $2",
            now, token_hash, durable=False,
        )  # fmt: skip

    async def set_session_flash(self, token_hash: str, flash: str) -> None:
        await self._run(
            "UPDATE console_sessions SET flash = $1 WHERE token_hash = $2", flash, token_hash
        )

    async def end_sessions(self, token_hash: str | None, account_id: int | None = None) -> None:
        await self._run(
            "DELETE FROM console_sessions WHERE token_hash = $1 OR account_id = $2",
            token_hash, account_id,
        )  # fmt: skip

    # -- chart and metrics -----------------------------------------------------------------
    async def hourly(self, account_id: int, since: int) -> list[HourCount]:
        # As on SQLite: `created` bounds the scan through its index; a message sent in the
        # window was created at most a day before it.
        rows = await self._all(
            "SELECT device_id, sim, senttime / $1::bigint, COUNT(*),"
            " COUNT(*) FILTER (WHERE status = 7) FROM messages"
            " WHERE account_id = $2 AND created >= $3 AND direction = 'out'"
            " AND senttime >= $4 AND device_id IS NOT NULL GROUP BY 1, 2, 3",
            HOUR_US, account_id, since - 24 * HOUR_US, since,
        )  # fmt: skip
        return [HourCount(int(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]

    async def metrics(
        self, latency_bounds: tuple[float, ...], delay_bounds: tuple[float, ...]
    ) -> MetricsSnapshot:
        try:
            # One snapshot for all the figures: counts that add up with each other even while
            # other servers write.
            async with (
                self._reads().acquire() as conn,
                conn.transaction(isolation="repeatable_read", readonly=True),
            ):
                return await _snapshot(conn, latency_bounds, delay_bounds)
        except _UNAVAILABLE as exc:
            raise StoreError(str(exc)) from exc


async def _snapshot(
    conn: Any, latency_bounds: tuple[float, ...], delay_bounds: tuple[float, ...]
) -> MetricsSnapshot:
    snap = MetricsSnapshot()
    snap.add_message_counts(await conn.fetch(MESSAGE_COUNTS_SQL))
    snap.add_pool_waiting(await conn.fetch(POOL_WAITING_SQL))
    # Accept -> sent counts from when the message was due (its schedule, if it had one).
    latency = "GREATEST(senttime - due, 0)"
    row = await conn.fetchrow(
        _histogram_sql(latency, latency_bounds, "direction = 'out' AND senttime IS NOT NULL")
    )
    snap.send_latency = histogram(row, latency_bounds)
    delay = "GREATEST(delivered_time - senttime, 0)"
    row = await conn.fetchrow(
        _histogram_sql(
            delay,
            delay_bounds,
            "direction = 'out' AND status IN (7, 8) AND delivered_time IS NOT NULL"
            " AND senttime IS NOT NULL",
        )
    )
    snap.report_delay = histogram(row, delay_bounds)
    for state, n, failed in await conn.fetch(
        "SELECT state, COUNT(*), COALESCE(SUM(attempts"
        " - CASE WHEN state = 'delivered' THEN 1 ELSE 0 END), 0)"
        " FROM webhook_outbox GROUP BY state"
    ):
        snap.webhooks[str(state)] = int(n)
        snap.webhook_failed_attempts += int(failed)
    return snap
