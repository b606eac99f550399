"""Deleting a device or an account with everything that is only theirs, in one transaction.

What goes (docs/configuration.md, "Deleting"): a device takes its SIMs, its pool memberships and
its own pool, its events and webhook deliveries, and its messages, sent, received and unsent.
Unsent messages of a shared pool that the device had taken but not yet committed go back to their
pool instead, to leave on another SIM. An account takes its devices so, then its tokens, pools,
tags, contacts, all its messages and the native API's keys, quotas and templates.

Foreign keys are on: a table added later that points at a device or an account and is not
cleared here makes the delete fail (and roll back) rather than leave rows pointing nowhere.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from simhive.server.core.status import Status
from simhive.server.store.base import StoreError
from simhive.server.store.sqlite_pools import REQUEUE_SET

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

_UNSENT = (Status.NEW, Status.TAKEN, Status.QUEUED)
_UNSENT_SQL = ",".join(str(int(s)) for s in _UNSENT)
# The device's messages: its own, and those still waiting in its device pool (no device yet).
_DEVICE_MESSAGES = (
    "(device_id = :d OR pool_id IN (SELECT id FROM pools WHERE kind = 'device' AND device_id = :d))"
)
# Shared-pool messages the device took and has not committed: back to their pool.
# IFNULL: a NULL device_id or pool_id would make the test NULL, and NOT NULL excludes a row too.
_BACK_TO_POOL = (
    f"IFNULL(device_id = :d AND status IN ({int(Status.NEW)}, {int(Status.TAKEN)})"
    " AND pool_id IN (SELECT id FROM pools WHERE kind <> 'device'), 0)"
)


class SqliteDeleteStore:
    writer: GroupCommitWriter

    async def delete_device(
        self, device_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            counts = _device_counts(conn, device_id)
            if not dry_run:
                _delete_device(conn, device_id, now)
            return counts

        return await self.writer.submit(op)

    async def delete_account(
        self, account_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        def op(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT id FROM devices WHERE account_id = ?", (account_id,))
            devices = [int(r[0]) for r in rows]
            counts = {"devices": len(devices), **_account_counts(conn, account_id)}
            if not dry_run:
                for device_id in devices:
                    _delete_device(conn, device_id, now)
                _delete_account(conn, account_id)
            return counts

        return await self.writer.submit(op)


def _count(conn: sqlite3.Connection, sql: str, params: dict[str, int]) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def _device_counts(conn: sqlite3.Connection, device_id: int) -> dict[str, int]:
    p = {"d": device_id}
    back = _count(conn, f"SELECT COUNT(*) FROM messages WHERE {_BACK_TO_POOL}", p)
    gone = f"SELECT COUNT(*) FROM messages WHERE {_DEVICE_MESSAGES} AND NOT ({_BACK_TO_POOL})"
    return {
        "sims": _count(conn, "SELECT COUNT(*) FROM sims WHERE device_id = :d", p),
        "messages": _count(conn, gone, p),
        "unsent_messages": _count(conn, f"{gone} AND status IN ({_UNSENT_SQL})", p),
        "incoming_messages": _count(conn, f"{gone} AND direction = 'in'", p),
        "messages_back_to_pool": back,
    }


def _account_counts(conn: sqlite3.Connection, account_id: int) -> dict[str, int]:
    p = {"a": account_id}
    return {
        "messages": _count(conn, "SELECT COUNT(*) FROM messages WHERE account_id = :a", p),
        "unsent_messages": _count(
            conn,
            f"SELECT COUNT(*) FROM messages WHERE account_id = :a AND status IN ({_UNSENT_SQL})",
            p,
        ),
        "pools": _count(
            conn, "SELECT COUNT(*) FROM pools WHERE account_id = :a AND kind = 'named'", p
        ),
        "tags": _count(conn, "SELECT COUNT(*) FROM tags WHERE account_id = :a", p),
        "contacts": _count(conn, "SELECT COUNT(*) FROM contacts WHERE account_id = :a", p),
    }


def _run(conn: sqlite3.Connection, statements: list[str], params: dict[str, int]) -> None:
    try:
        for sql in statements:
            conn.execute(sql, params)
    except sqlite3.IntegrityError as exc:  # a table this module does not know refers to the row
        raise StoreError(f"cannot delete: rows elsewhere still refer to it ({exc})") from None


def _delete_device(conn: sqlite3.Connection, device_id: int, now: int) -> None:
    mine = f"SELECT id FROM messages WHERE {_DEVICE_MESSAGES}"
    _run(conn, [
        f"UPDATE messages SET {REQUEUE_SET.replace('?', ':now')} WHERE {_BACK_TO_POOL}",
        f"DELETE FROM message_parts WHERE sms_id IN ({mine})",
        f"DELETE FROM message_history WHERE sms_id IN ({mine})",
        "DELETE FROM incoming_keys WHERE device_id = :d",
        "DELETE FROM applied_events WHERE device_id = :d",
        "DELETE FROM webhook_outbox WHERE device_id = :d",
        f"DELETE FROM messages WHERE {_DEVICE_MESSAGES}",
        "DELETE FROM pakets WHERE device_id = :d",
        "DELETE FROM device_events WHERE device_id = :d",
        "DELETE FROM sims WHERE device_id = :d",
        "DELETE FROM sim_ready WHERE device_id = :d",
        "DELETE FROM pool_sims WHERE device_id = :d",
        "DELETE FROM pool_sticky WHERE device_id = :d",
        "DELETE FROM pools WHERE kind = 'device' AND device_id = :d",
        "DELETE FROM devices WHERE id = :d",
    ], {"d": device_id, "now": now})  # fmt: skip


def _delete_account(conn: sqlite3.Connection, account_id: int) -> None:
    mine = "SELECT id FROM messages WHERE account_id = :a"
    _run(conn, [
        f"DELETE FROM message_parts WHERE sms_id IN ({mine})",
        f"DELETE FROM message_history WHERE sms_id IN ({mine})",
        "DELETE FROM messages WHERE account_id = :a",
        "DELETE FROM pakets WHERE account_id = :a",
        "DELETE FROM contacts WHERE account_id = :a",
        "DELETE FROM tags WHERE account_id = :a",
        "DELETE FROM pools WHERE account_id = :a",
        "DELETE FROM idempotency_keys WHERE account_id = :a",
        "DELETE FROM api_keys WHERE account_id = :a",
        "DELETE FROM account_quotas WHERE account_id = :a",
        "DELETE FROM quota_usage WHERE account_id = :a",
        "DELETE FROM templates WHERE account_id = :a",
        "DELETE FROM account_message_counts WHERE account_id = :a",
        "DELETE FROM account_tokens WHERE account_id = :a",
        "DELETE FROM accounts WHERE id = :a",
    ], {"a": account_id})  # fmt: skip
