"""SQLite implementation of AccountWebhookStore, mixed into SqliteStore (needs `writer`, `_all`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from simhive.server.core.models import Device
from simhive.server.store.account_webhooks_base import AccountHooks, AccountJob, AccountWebhookStore
from simhive.server.store.sqlite_rows import DEVICE_COLS, device_row

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

_ROW_COLS = ("id", "kind", "event_key", "url", "sms_id", "status", "state", "attempts",
             "created", "delivered_at", "last_error")  # fmt: skip
# The devices of accounts with a device webhook, with their last known connection and that URL
# (no parameters: both engines run it as it is, and read its rows with _watched).
_WATCHED = (
    "SELECT " + ", ".join("d." + c.strip() for c in DEVICE_COLS.split(","))
    + ", c.connected, a.url_device FROM devices d"
    " JOIN account_webhooks a ON a.account_id = d.account_id"
    " LEFT JOIN device_connection c ON c.device_id = d.id"
    " WHERE COALESCE(a.url_device, '') <> '' ORDER BY d.id"
)  # fmt: skip
_DEVICE_WIDTH = len(DEVICE_COLS.split(","))


def _watched(rows: Iterable[Iterable[Any]]) -> list[tuple[Device, bool | None, str]]:
    out: list[tuple[Device, bool | None, str]] = []
    for row in rows:
        r = tuple(row)
        connected, url = r[_DEVICE_WIDTH], str(r[_DEVICE_WIDTH + 1])
        out.append(
            (device_row(r[:_DEVICE_WIDTH]), None if connected is None else bool(connected), url)
        )
    return out


class SqliteAccountWebhookStore(AccountWebhookStore):
    writer: GroupCommitWriter

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore

    async def account_webhooks(self, account_id: int) -> AccountHooks | None:
        rows = await self._all(
            "SELECT url_status, url_incoming, url_device, secret FROM account_webhooks"
            " WHERE account_id = ?",
            (account_id,),
        )
        return AccountHooks(*rows[0]) if rows else None

    async def set_account_webhooks(self, account_id: int, hooks: AccountHooks, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO account_webhooks(account_id, url_status, url_incoming,"
                " url_device, secret, updated) VALUES (?, ?, ?, ?, ?, ?)",
                (account_id, hooks.status, hooks.incoming, hooks.device, hooks.secret, now),
            )

        await self.writer.submit(op, atomic=True)

    async def due_account_webhooks(self, now: int, limit: int) -> list[AccountJob]:
        rows = await self._all(
            "SELECT w.id, w.account_id, w.kind, w.event_key, w.url, w.sms_id, w.status, w.body,"
            " w.attempts, a.secret FROM account_webhook_outbox w"
            " LEFT JOIN account_webhooks a ON a.account_id = w.account_id"
            " WHERE w.state = 'pending' AND w.next_attempt <= ? AND NOT EXISTS"
            " (SELECT 1 FROM account_webhook_outbox o WHERE o.sms_id = w.sms_id"
            " AND o.state = 'pending' AND o.id < w.id) ORDER BY w.next_attempt, w.id LIMIT ?",
            (now, limit),
        )
        return [AccountJob(*r) for r in rows]

    async def account_webhook_done(self, job_id: int, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE account_webhook_outbox SET state = 'delivered', delivered_at = ?,"
                " attempts = attempts + 1, last_error = NULL WHERE id = ?",
                (now, job_id),
            )

        await self.writer.submit(op, atomic=True)

    async def account_webhook_failed(
        self, job_id: int, error: str, next_attempt: int | None, now: int
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE account_webhook_outbox SET attempts = attempts + 1, last_error = ?,"
                " state = CASE WHEN ? IS NULL THEN 'dead' ELSE state END,"
                " next_attempt = COALESCE(?, next_attempt) WHERE id = ?",
                (error[:500], next_attempt, next_attempt, job_id),
            )

        await self.writer.submit(op, atomic=True)

    async def prune_account_webhooks(self, before: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "DELETE FROM account_webhook_outbox WHERE state IN ('delivered', 'dead')"
                " AND created < ?",
                (before,),
            )
            return int(cur.rowcount)

        return await self.writer.submit(op, atomic=True)

    async def account_webhook_rows(self, account_id: int) -> list[dict[str, object]]:
        rows = await self._all(
            f"SELECT {', '.join(_ROW_COLS)} FROM account_webhook_outbox WHERE account_id = ?"
            " ORDER BY id",
            (account_id,),
        )
        return [dict(zip(_ROW_COLS, r, strict=True)) for r in rows]

    async def watched_devices(self) -> list[tuple[Device, bool | None, str]]:
        return _watched(await self._all(_WATCHED))

    async def record_connection(
        self, device: Device, connected: bool, now: int, url: str | None, body: str | None
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO device_connection(device_id, connected, changed)"
                " VALUES (?, ?, ?)",
                (device.id, int(connected), now),
            )
            if url:
                conn.execute(
                    "INSERT OR IGNORE INTO account_webhook_outbox(account_id, kind, event_key,"
                    " url, body, next_attempt, created) VALUES (?, 'device', ?, ?, ?, ?, ?)",
                    (device.account_id, f"a-device:{device.id}:{now}", url, body, now, now),
                )

        await self.writer.submit(op)
