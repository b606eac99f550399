"""SQLite implementation of AgentExtrasStore (lease sweeper, device agent settings, webhook
outbox), mixed into SqliteStore.

The outbox rows themselves are inserted by triggers (sqlite_schema.py migration 3) inside the
transaction that changes the message; this module only reads them and records delivery attempts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simhive.server.store.agent_base import (
    AGENT_SETTING_COLUMNS,
    AgentExtrasStore,
    DeviceAgentSettings,
    DeviceEvent,
    WebhookJob,
)
from simhive.server.store.sqlite_pools import REQUEUE_SET, wake_devices
from simhive.server.store.sqlite_rows import MESSAGE_COLS, columns, message_row, row_reader

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

_SETTINGS = f"SELECT {columns(DeviceAgentSettings, device_id='id')} FROM devices"


def _unset(stored: str | None) -> str | None:
    return stored or None  # an empty URL or secret means none, as NULL does


def _setting_columns(values: dict[str, object]) -> list[str]:
    """The columns `update_device_settings` sets; ValueError for a name that is not one."""
    unknown = sorted(set(values) - set(AGENT_SETTING_COLUMNS))
    if unknown:
        raise ValueError(f"not device settings: {unknown}")
    return list(values)


_settings_row = row_reader(
    DeviceAgentSettings, webhook_incoming=_unset, webhook_status=_unset, webhook_secret=_unset
)
_JOBS = (
    "SELECT w.id, w.device_id, w.kind, w.event_key, w.url, w.status, w.attempts,"
    " d.webhook_secret, d.title, a.timezone, m.sent_at, "
    + MESSAGE_COLS
    + " FROM webhook_outbox w JOIN devices d ON d.id = w.device_id"
    " JOIN accounts a ON a.id = d.account_id JOIN messages m ON m.id = w.sms_id"
    " LEFT JOIN pakets p ON p.id = m.paket_id"
)
# A message's webhooks go out in order: a row waits while an older one of the same message is
# still pending (a receiver must not see 7 before 6). Such a row is not due either: it becomes
# deliverable when that row is done, and the sender looks again right after a delivery.
_IN_ORDER = (
    "w.state = 'pending' AND NOT EXISTS (SELECT 1 FROM webhook_outbox o"
    " WHERE o.sms_id = w.sms_id AND o.state = 'pending' AND o.id < w.id)"
)


def _job_row(r: Any) -> WebhookJob:
    """A row of `_JOBS` (either engine's)."""
    values = tuple(r)
    return WebhookJob(
        id=values[0],
        device_id=values[1],
        kind=values[2],
        event_key=values[3],
        url=values[4],
        status=values[5],
        attempts=values[6],
        secret=values[7] or None,
        device_title=values[8],
        timezone=values[9],
        sent_at=values[10],
        message=message_row(values[11:]),
    )


DEVICE_EVENTS_KEPT = 1000
_OUTBOX_COLS = (
    "id",
    "device_id",
    "kind",
    "event_key",
    "url",
    "sms_id",
    "status",
    "state",
    "attempts",
    "next_attempt",
    "created",
    "delivered_at",
    "last_error",
)


class SqliteWebhookStore(AgentExtrasStore):
    """Needs SqliteStore's `writer`, `_all` and `_one`."""

    if TYPE_CHECKING:
        writer: GroupCommitWriter

        async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...

        async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    async def expire_leases(self, now: int) -> set[int]:
        def op(conn: sqlite3.Connection) -> set[int]:
            expired = conn.execute(
                "SELECT DISTINCT device_id, pool_id FROM messages WHERE status = 2"
                " AND lease_expires < ?",
                (now,),
            ).fetchall()
            if not expired:
                return set()
            conn.execute(
                f"UPDATE messages SET {REQUEUE_SET} WHERE status = 2 AND lease_expires < ?",
                (now, now),
            )
            # A pinned message's own device may take it again; a pool message any of its pool's.
            pools = sorted({int(p) for _, p in expired if p is not None})
            return {int(d) for d, p in expired if p is None} | wake_devices(conn, pools)

        return await self.writer.submit(op)

    async def device_agent_settings(self, device_id: int) -> DeviceAgentSettings | None:
        row = await self._one(f"{_SETTINGS} WHERE id = ?", (device_id,))
        return None if row is None else _settings_row(row)

    async def update_device_settings(self, device_id: int, values: dict[str, object]) -> None:
        columns = _setting_columns(values)
        if not columns:
            return
        sql = f"UPDATE devices SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?"
        params = [*(values[c] for c in columns), device_id]

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self.writer.submit(op)

    async def add_device_events(
        self, device_id: int, events: Sequence[DeviceEvent], now: int
    ) -> None:
        if not events:
            return
        rows = [(device_id, e.at, e.kind, e.state, e.reason, e.slot, now) for e in events]

        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO device_events(device_id, at, kind, state, reason, slot, received)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            # Keep the newest events per device; a flapping modem must not grow the table forever.
            conn.execute(
                "DELETE FROM device_events WHERE device_id = ? AND id <= (SELECT id FROM"
                " device_events WHERE device_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (device_id, device_id, DEVICE_EVENTS_KEPT),
            )

        await self.writer.submit(op)

    async def device_events(self, device_id: int, limit: int = 100) -> list[DeviceEvent]:
        rows = await self._all(
            "SELECT at, kind, state, reason, slot FROM device_events WHERE device_id = ?"
            " ORDER BY id DESC LIMIT ?",
            (device_id, limit),
        )
        return [DeviceEvent(*r) for r in reversed(rows)]

    async def due_webhooks(self, now: int, limit: int) -> list[WebhookJob]:
        rows = await self._all(
            f"{_JOBS} WHERE w.next_attempt <= ? AND {_IN_ORDER}"
            " ORDER BY w.next_attempt, w.id LIMIT ?",
            (now, limit),
        )
        return [_job_row(r) for r in rows]

    async def next_webhook_time(self) -> int | None:
        row = await self._one(f"SELECT MIN(w.next_attempt) FROM webhook_outbox w WHERE {_IN_ORDER}")
        return int(row[0]) if row and row[0] is not None else None

    async def webhook_delivered(self, job_id: int, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE webhook_outbox SET state = 'delivered', delivered_at = ?,"
                " attempts = attempts + 1, last_error = NULL WHERE id = ?",
                (now, job_id),
            )

        await self.writer.submit(op)

    async def webhook_failed(
        self, job_id: int, error: str, next_attempt: int | None, now: int
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?,"
                " state = CASE WHEN ? IS NULL THEN 'dead' ELSE state END,"
                " next_attempt = COALESCE(?, next_attempt) WHERE id = ?",
                (error[:500], next_attempt, next_attempt, job_id),
            )

        await self.writer.submit(op)

    async def prune_webhooks(self, before: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM webhook_outbox WHERE state IN ('delivered', 'dead') AND created < ?",
                (before,),
            )
            return int(cur.rowcount)

        return await self.writer.submit(op)

    async def webhook_rows(self, device_id: int | None = None) -> list[dict[str, object]]:
        where, params = ("WHERE device_id = ?", (device_id,)) if device_id is not None else ("", ())
        rows = await self._all(
            f"SELECT {', '.join(_OUTBOX_COLS)} FROM webhook_outbox {where} ORDER BY id", params
        )
        return [dict(zip(_OUTBOX_COLS, r, strict=True)) for r in rows]
