"""The PostgreSQL twins of sqlite_webhooks.py and sqlite_idempotency.py: per-device agent settings,
device events, the webhook outbox (rows written by triggers, pg_schema.py) and Idempotency-Key
records. The lease sweeper's `expire_leases` lives with the other lease SQL in pg_agent.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.store.agent_base import (
    DeviceAgentSettings,
    DeviceEvent,
    WebhookJob,
)
from simhive.server.store.idempotency_base import IdempotencyStore, KeyRecord
from simhive.server.store.sqlite_webhooks import (
    _IN_ORDER,
    _JOBS,
    _OUTBOX_COLS,
    _SETTINGS,
    DEVICE_EVENTS_KEPT,
    _job_row,
    _setting_columns,
    _settings_row,
)

T = TypeVar("T")
Conn = asyncpg.Connection


class _Needs:
    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

        async def _one(self, sql: str, *args: Any) -> asyncpg.Record | None: ...


class PgWebhookStore(_Needs):
    async def device_agent_settings(self, device_id: int) -> DeviceAgentSettings | None:
        row = await self._one(f"{_SETTINGS} WHERE id = $1", device_id)
        return None if row is None else _settings_row(row)

    async def update_device_settings(self, device_id: int, values: dict[str, object]) -> None:
        columns = _setting_columns(values)
        if not columns:
            return
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=1))
        sql = f"UPDATE devices SET {sets} WHERE id = ${len(columns) + 1}"
        args = [*(values[c] for c in columns), device_id]

        async def op(conn: Conn) -> None:
            await conn.execute(sql, *args)

        await self._write(op)

    async def add_device_events(
        self, device_id: int, events: Sequence[DeviceEvent], now: int
    ) -> None:
        if not events:
            return
        rows = [(device_id, e.at, e.kind, e.state, e.reason, e.slot, now) for e in events]

        async def op(conn: Conn) -> None:
            await conn.executemany(
                "INSERT INTO device_events(device_id, at, kind, state, reason, slot, received)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                rows,
            )
            await conn.execute(
                "DELETE FROM device_events WHERE device_id = $1 AND id <= (SELECT id FROM"
                " device_events WHERE device_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
                device_id, DEVICE_EVENTS_KEPT,
            )  # fmt: skip

        await self._write(op)

    async def device_events(self, device_id: int, limit: int = 100) -> list[DeviceEvent]:
        rows = await self._all(
            "SELECT at, kind, state, reason, slot FROM device_events WHERE device_id = $1"
            " ORDER BY id DESC LIMIT $2",
            device_id, limit,
        )  # fmt: skip
        return [DeviceEvent(*r) for r in reversed(rows)]

    async def due_webhooks(self, now: int, limit: int) -> list[WebhookJob]:
        rows = await self._all(
            f"{_JOBS} WHERE w.next_attempt <= $1 AND {_IN_ORDER}"
            " ORDER BY w.next_attempt, w.id LIMIT $2",
            now, limit,
        )  # fmt: skip
        return [_job_row(r) for r in rows]

    async def next_webhook_time(self) -> int | None:
        row = await self._one(f"SELECT MIN(w.next_attempt) FROM webhook_outbox w WHERE {_IN_ORDER}")
        return int(row[0]) if row and row[0] is not None else None

    async def webhook_delivered(self, job_id: int, now: int) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE webhook_outbox SET state = 'delivered', delivered_at = $1,"
                " attempts = attempts + 1, last_error = NULL WHERE id = $2",
                now, job_id,
            )  # fmt: skip

        await self._write(op)

    async def webhook_failed(
        self, job_id: int, error: str, next_attempt: int | None, now: int
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $1,"
                " state = CASE WHEN $2::bigint IS NULL THEN 'dead' ELSE state END,"
                " next_attempt = COALESCE($2::bigint, next_attempt) WHERE id = $3",
                error[:500], next_attempt, job_id,
            )  # fmt: skip

        await self._write(op)

    async def prune_webhooks(self, before: int) -> int:
        async def op(conn: Conn) -> int:
            status = await conn.execute(
                "DELETE FROM webhook_outbox WHERE state IN ('delivered', 'dead') AND created < $1",
                before,
            )
            return int(status.split()[-1])

        return await self._write(op)

    async def webhook_rows(self, device_id: int | None = None) -> list[dict[str, object]]:
        where, args = ("WHERE device_id = $1", [device_id]) if device_id is not None else ("", [])
        rows = await self._all(
            f"SELECT {', '.join(_OUTBOX_COLS)} FROM webhook_outbox {where} ORDER BY id", *args
        )
        return [dict(zip(_OUTBOX_COLS, r, strict=True)) for r in rows]


class PgIdempotencyStore(_Needs, IdempotencyStore):
    async def claim_key(
        self, account_id: int, key: str, fingerprint: str, now: int, expired_before: int
    ) -> KeyRecord | None:
        async def op(conn: Conn) -> KeyRecord | None:
            await conn.execute("DELETE FROM idempotency_keys WHERE created < $1", expired_before)
            # Two servers claiming one key at once: the INSERT of one waits for the other's
            # commit and then finds the row, so exactly one claims it.
            claimed = await conn.fetchval(
                "INSERT INTO idempotency_keys(account_id, key, fingerprint, created)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, key) DO NOTHING RETURNING 1",
                account_id, key, fingerprint, now,
            )  # fmt: skip
            if claimed is not None:
                return None
            row = await conn.fetchrow(
                "SELECT fingerprint, answer FROM idempotency_keys"
                " WHERE account_id = $1 AND key = $2",
                account_id, key,
            )  # fmt: skip
            if row is None:  # freed between the two statements: claim it now
                await conn.execute(
                    "INSERT INTO idempotency_keys(account_id, key, fingerprint, created)"
                    " VALUES ($1, $2, $3, $4)",
                    account_id, key, fingerprint, now,
                )  # fmt: skip
                return None
            return KeyRecord(str(row[0]), None if row[1] is None else str(row[1]))

        return await self._write(op)

    async def answer_key(self, account_id: int, key: str, answer: str) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE idempotency_keys SET answer = $1 WHERE account_id = $2 AND key = $3",
                answer, account_id, key,
            )  # fmt: skip

        await self._write(op)

    async def release_key(self, account_id: int, key: str) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2"
                " AND answer IS NULL",
                account_id, key,
            )  # fmt: skip

        await self._write(op)
