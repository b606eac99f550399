"""The console's and /metrics' queries on the SQLite store (server/store/console_base.py).

Reads go through a connection of their own, so a scan (a metrics scrape counts every message)
never queues in front of the API's reads; the few writes (cancel, redeliver) go through the
store's group-commit writer like every other write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

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
from simhive.server.store.sqlite import SqliteStore
from simhive.server.store.sqlite_rows import message_row


def _histogram_sql(expr: str, bounds: tuple[float, ...], where: str) -> str:
    sums = "".join(f", SUM({expr} <= {int(b * US)})" for b in bounds)
    return f"SELECT COUNT(*), TOTAL({expr}){sums} FROM messages WHERE {where}"


class SqliteConsoleStore(ConsoleStore):
    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self._db = await aiosqlite.connect(self.store.path, isolation_level=None)
        await self._db.execute(f"PRAGMA busy_timeout = {int(self.store.busy_timeout_ms)}")
        await self._db.execute("PRAGMA query_only = 1")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._db is None:
            raise StoreError("console store is not open")
        try:
            return list(await self._db.execute_fetchall(sql, params))
        except sqlite3.OperationalError as exc:
            raise StoreError(str(exc)) from exc

    # -- overview --------------------------------------------------------------------------
    async def queue_depth(self, account_id: int) -> dict[SimKey, int]:
        rows = await self._all(
            "SELECT device_id, sim, COUNT(*) FROM messages WHERE account_id = ?"
            " AND status IN (1, 2, 3) AND device_id IS NOT NULL GROUP BY device_id, sim",
            (account_id,),
        )
        return {(int(r[0]), int(r[1])): int(r[2]) for r in rows}

    async def counts_since(self, account_id: int, since: int) -> dict[SimKey, dict[int, int]]:
        rows = await self._all(
            "SELECT device_id, sim, status, COUNT(*) FROM messages WHERE account_id = ?"
            " AND created >= ? AND direction = 'out' AND device_id IS NOT NULL"
            " GROUP BY device_id, sim, status",
            (account_id, since),
        )
        out: dict[SimKey, dict[int, int]] = {}
        for device_id, sim, status, n in rows:
            out.setdefault((int(device_id), int(sim)), {})[int(status)] = int(n)
        return out

    async def sim_readiness_of(self, device_ids: list[int]) -> dict[SimKey, tuple[bool, str]]:
        if not device_ids:
            return {}
        marks = ",".join("?" * len(device_ids))
        rows = await self._all(
            f"SELECT device_id, slot, ready, reason FROM sim_ready WHERE device_id IN ({marks})",
            device_ids,
        )
        return {(int(r[0]), int(r[1])): (bool(r[2]), str(r[3])) for r in rows}

    # -- messages --------------------------------------------------------------------------
    async def search_messages(self, flt: ConsoleFilter) -> list[Message]:
        clauses = ["m.account_id = ?"]
        params: list[Any] = [flt.account_id]
        if flt.status:
            clauses.append(f"m.status IN ({','.join('?' * len(flt.status))})")
            params.extend(flt.status)
        for column, value in (("m.device_id", flt.device_id), ("m.direction", flt.direction)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if flt.number:
            clauses.append("m.sendto LIKE ? ESCAPE '\\'")
            params.append(like_pattern(flt.number))
        if flt.search:
            clauses.append("m.body LIKE ? ESCAPE '\\'")
            params.append(like_pattern(flt.search))
        for op, value in (
            (">=", flt.created_from),
            ("<=", flt.created_to),
        ):
            if value is not None:
                clauses.append(f"m.created {op} ?")
                params.append(value)
        if flt.before_id is not None:
            clauses.append("m.id < ?")
            params.append(flt.before_id)
        rows = await self._all(
            f"{FROM_MESSAGES_SQL} WHERE {' AND '.join(clauses)} ORDER BY m.id DESC LIMIT ?",
            [*params, flt.limit],
        )
        return [message_row(r) for r in rows]

    async def message_parts(self, sms_id: int) -> list[PartRow]:
        rows = await self._all(
            "SELECT part_index, reference, report_status, reported_at FROM message_parts"
            " WHERE sms_id = ? ORDER BY part_index",
            (sms_id,),
        )
        return [PartRow(*r) for r in rows]

    async def message_outbox(self, sms_id: int) -> list[OutboxRow]:
        rows = await self._all(f"{OUTBOX_SQL} WHERE w.sms_id = ? ORDER BY w.id", (sms_id,))
        return [OutboxRow(*r) for r in rows]

    async def cancel_message(
        self, account_id: int, sms_id: int, status: int, reason: str, now: int
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE messages SET status = ?, status_changed = ?, failure_code = 'cancelled',"
                " failure_reason = ? WHERE id = ? AND account_id = ? AND direction = 'out'"
                " AND status = 1 AND lease_id IS NULL",
                (status, now, reason, sms_id, account_id),
            )
            return cur.rowcount == 1

        return await self.store.writer.submit(op)

    # -- inbox -----------------------------------------------------------------------------
    async def conversations(self, account_id: int, limit: int) -> list[Conversation]:
        # Incoming messages are status 5: the (account, status, id) index finds them.
        rows = await self._all(
            "SELECT m.sendto, m.id, m.body, m.created, c.n FROM (SELECT sendto,"
            " MAX(id) AS last, COUNT(*) AS n FROM messages WHERE account_id = ? AND status = 5"
            " GROUP BY sendto) c JOIN messages m ON m.id = c.last ORDER BY m.id DESC LIMIT ?",
            (account_id, limit),
        )
        return [Conversation(str(r[0]), int(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]

    async def conversation(self, account_id: int, number: str, limit: int) -> list[Message]:
        rows = await self._all(
            f"{FROM_MESSAGES_SQL} WHERE m.account_id = ? AND m.sendto = ?"
            " ORDER BY m.id DESC LIMIT ?",
            (account_id, number, limit),
        )
        return [message_row(r) for r in reversed(rows)]

    # -- webhooks --------------------------------------------------------------------------
    async def outbox(self, account_id: int, state: str | None, limit: int) -> list[OutboxRow]:
        where = "d.account_id = ?" + (" AND w.state = ?" if state else "")
        params: list[Any] = [account_id, *([state] if state else []), limit]
        rows = await self._all(
            f"{OUTBOX_SQL} JOIN devices d ON d.id = w.device_id WHERE {where}"
            " ORDER BY w.id DESC LIMIT ?",
            params,
        )
        return [OutboxRow(*r) for r in rows]

    async def redeliver(self, account_id: int, row_id: int, now: int) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            # attempts back to 0: the row gets the whole retry schedule again.
            cur = conn.execute(
                "UPDATE webhook_outbox SET state = 'pending', next_attempt = ?, attempts = 0,"
                " delivered_at = NULL WHERE id = ? AND state IN ('delivered', 'dead')"
                " AND device_id IN (SELECT id FROM devices WHERE account_id = ?)",
                (now, row_id, account_id),
            )
            return cur.rowcount == 1

        return await self.store.writer.submit(op)

    # -- login sessions --------------------------------------------------------------------
    async def _write(self, sql: str, params: Sequence[Any]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self.store.writer.submit(op)

    async def add_session(
        self, token_hash: str, account_id: int, csrf: str, now: int, expired_before: int
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM console_sessions WHERE used < ?", (expired_before,))
            conn.execute(
                "INSERT INTO console_sessions(token_hash, account_id, csrf, started, used)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_hash, account_id, csrf, now, now),
            )

        await self.store.writer.submit(op)

    async def session(self, token_hash: str) -> SessionRow | None:
        rows = await self._all(
            "SELECT account_id, csrf, started, used, flash FROM console_sessions"
            " WHERE token_hash = ?",
            (token_hash,),
        )
        return SessionRow(*rows[0]) if rows else None

    async def touch_session(self, token_hash: str, now: int) -> None:
        await self._write(
            "UPDATE console_sessions SET used = MAX(used, ?) WHERE token_hash = ?",
            (now, token_hash),
        )

    async def set_session_flash(self, token_hash: str, flash: str) -> None:
        await self._write(
            "UPDATE console_sessions SET flash = ? WHERE token_hash = ?", (flash, token_hash)
        )

    async def end_sessions(self, token_hash: str | None, account_id: int | None = None) -> None:
        await self._write(
            "DELETE FROM console_sessions WHERE token_hash = ? OR account_id = ?",
            (token_hash, account_id),
        )

    # -- chart and metrics -----------------------------------------------------------------
    async def hourly(self, account_id: int, since: int) -> list[HourCount]:
        # `created` bounds the scan through its index; a message sent in the window was created
        # at most a day before it (longer-scheduled ones are left out of the chart).
        rows = await self._all(
            "SELECT device_id, sim, senttime / ?, COUNT(*), SUM(status = 7) FROM messages"
            " WHERE account_id = ? AND created >= ? AND direction = 'out'"
            " AND senttime >= ? AND device_id IS NOT NULL GROUP BY 1, 2, 3",
            (HOUR_US, account_id, since - 24 * HOUR_US, since),
        )
        return [HourCount(int(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]

    async def metrics(
        self, latency_bounds: tuple[float, ...], delay_bounds: tuple[float, ...]
    ) -> MetricsSnapshot:
        snap = MetricsSnapshot()
        snap.add_message_counts(await self._all(MESSAGE_COUNTS_SQL))
        snap.add_pool_waiting(await self._all(POOL_WAITING_SQL))
        # Accept -> sent counts from when the message was due (its schedule, if it had one).
        latency = "MAX(senttime - due, 0)"
        row = (
            await self._all(
                _histogram_sql(
                    latency, latency_bounds, "direction = 'out' AND senttime IS NOT NULL"
                )
            )
        )[0]
        snap.send_latency = histogram(row, latency_bounds)
        delay = "MAX(delivered_time - senttime, 0)"
        row = (
            await self._all(
                _histogram_sql(
                    delay,
                    delay_bounds,
                    "direction = 'out' AND status IN (7, 8) AND delivered_time IS NOT NULL"
                    " AND senttime IS NOT NULL",
                )
            )
        )[0]
        snap.report_delay = histogram(row, delay_bounds)
        for state, n, failed in await self._all(
            "SELECT state, COUNT(*), TOTAL(attempts - (state = 'delivered'))"
            " FROM webhook_outbox GROUP BY state"
        ):
            snap.webhooks[str(state)] = int(n)
            snap.webhook_failed_attempts += int(failed)
        return snap
