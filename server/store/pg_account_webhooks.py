"""The PostgreSQL twin of sqlite_account_webhooks.py (tables and triggers of pg_schema migration
19), mixed into PgStore."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.core.models import Device
from simhive.server.store.account_webhooks_base import AccountHooks, AccountJob
from simhive.server.store.sqlite_account_webhooks import _ROW_COLS, _WATCHED, _watched

T = TypeVar("T")
Conn = asyncpg.Connection


def _count(done: str) -> int:
    return int(str(done).split()[-1])


class PgAccountWebhookStore:
    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def account_webhooks(self, account_id: int) -> AccountHooks | None:
        rows = await self._all(
            "SELECT url_status, url_incoming, url_device, secret FROM account_webhooks"
            " WHERE account_id = $1",
            account_id,
        )
        return AccountHooks(*rows[0]) if rows else None

    async def set_account_webhooks(self, account_id: int, hooks: AccountHooks, now: int) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO account_webhooks(account_id, url_status, url_incoming, url_device,"
                " secret, updated) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id)"
                " DO UPDATE SET url_status = excluded.url_status,"
                " url_incoming = excluded.url_incoming, url_device = excluded.url_device,"
                " secret = excluded.secret, updated = excluded.updated",
                account_id, hooks.status, hooks.incoming, hooks.device, hooks.secret, now,
            )  # fmt: skip

        await self._write(op)

    async def due_account_webhooks(self, now: int, limit: int) -> list[AccountJob]:
        rows = await self._all(
            "SELECT w.id, w.account_id, w.kind, w.event_key, w.url, w.sms_id, w.status, w.body,"
            " w.attempts, a.secret FROM account_webhook_outbox w"
            " LEFT JOIN account_webhooks a ON a.account_id = w.account_id"
            " WHERE w.state = 'pending' AND w.next_attempt <= $1 AND NOT EXISTS"
            " (SELECT 1 FROM account_webhook_outbox o WHERE o.sms_id = w.sms_id"
            " AND o.state = 'pending' AND o.id < w.id) ORDER BY w.next_attempt, w.id LIMIT $2",
            now, limit,
        )  # fmt: skip
        return [AccountJob(*r) for r in rows]

    async def account_webhook_done(self, job_id: int, now: int) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE account_webhook_outbox SET state = 'delivered', delivered_at = $1,"
                " attempts = attempts + 1, last_error = NULL WHERE id = $2",
                now, job_id,
            )  # fmt: skip

        await self._write(op)

    async def account_webhook_failed(
        self, job_id: int, error: str, next_attempt: int | None, now: int
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE account_webhook_outbox SET attempts = attempts + 1, last_error = $1,"
                " state = CASE WHEN $2::bigint IS NULL THEN 'dead' ELSE state END,"
                " next_attempt = COALESCE($2::bigint, next_attempt) WHERE id = $3",
                error[:500], next_attempt, job_id,
            )  # fmt: skip

        await self._write(op)

    async def prune_account_webhooks(self, before: int) -> int:
        async def op(conn: Conn) -> int:
            return _count(
                await conn.execute(
                    "DELETE FROM account_webhook_outbox WHERE state IN ('delivered', 'dead')"
                    " AND created < $1",
                    before,
                )
            )

        return await self._write(op)

    async def account_webhook_rows(self, account_id: int) -> list[dict[str, object]]:
        rows = await self._all(
            f"SELECT {', '.join(_ROW_COLS)} FROM account_webhook_outbox WHERE account_id = $1"
            " ORDER BY id",
            account_id,
        )
        return [dict(zip(_ROW_COLS, r, strict=True)) for r in rows]

    async def watched_devices(self) -> list[tuple[Device, bool | None, str]]:
        return _watched(await self._all(_WATCHED))

    async def record_connection(
        self, device: Device, connected: bool, now: int, url: str | None, body: str | None
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO device_connection(device_id, connected, changed) VALUES ($1, $2, $3)"
                " ON CONFLICT (device_id) DO UPDATE SET connected = excluded.connected,"
                " changed = excluded.changed",
                device.id, int(connected), now,
            )  # fmt: skip
            if url:
                await conn.execute(
                    "INSERT INTO account_webhook_outbox(account_id, kind, event_key, url, body,"
                    " next_attempt, created) VALUES ($1, 'device', $2, $3, $4, $5, $5)"
                    " ON CONFLICT (event_key) DO NOTHING",
                    device.account_id, f"a-device:{device.id}:{now}", url, body, now,
                )  # fmt: skip

        await self._write(op)
