"""The PostgreSQL twin of sqlite_delete.py: a device or an account with everything that is only
theirs, in one transaction (what goes: docs/configuration.md, "Deleting accounts and devices").

The device's row (or the account's) is locked first: an agent's calls stamp `lastseen` on their
device row before anything else (pg.py), so none of them can lease or report for a device while
it is being deleted. A table added later that points at the row and is not cleared here makes
the delete fail and roll back, as on SQLite."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.core.status import Status
from simhive.server.store.base import StoreError
from simhive.server.store.pg_pools import requeue

T = TypeVar("T")
Conn = asyncpg.Connection

_UNSENT_SQL = ",".join(str(int(s)) for s in (Status.NEW, Status.TAKEN, Status.QUEUED))
# `$1` is the device: its own messages, and those still waiting in its device pool.
_DEVICE_MESSAGES = (
    "(device_id = $1 OR pool_id IN (SELECT id FROM pools WHERE kind = 'device' AND device_id = $1))"
)
# Shared-pool messages the device took and has not committed: back to their pool.
_BACK_TO_POOL = (
    f"COALESCE(device_id = $1 AND status IN ({int(Status.NEW)}, {int(Status.TAKEN)})"
    " AND pool_id IN (SELECT id FROM pools WHERE kind <> 'device'), false)"
)


class PgDeleteStore:
    """Mixed into PgStore; needs its `_write`."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

    async def delete_device(
        self, device_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        async def op(conn: Conn) -> dict[str, int]:
            await conn.execute("SELECT 1 FROM devices WHERE id = $1 FOR UPDATE", device_id)
            counts = await _device_counts(conn, device_id)
            if not dry_run:
                await _delete_device(conn, device_id, now)
            return counts

        return await self._write(op)

    async def delete_account(
        self, account_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        async def op(conn: Conn) -> dict[str, int]:
            await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
            rows = await conn.fetch(
                "SELECT id FROM devices WHERE account_id = $1 ORDER BY id FOR UPDATE", account_id
            )
            devices = [int(r[0]) for r in rows]
            counts = {"devices": len(devices), **await _account_counts(conn, account_id)}
            if not dry_run:
                for device_id in devices:
                    await _delete_device(conn, device_id, now)
                await _delete_account(conn, account_id)
            return counts

        return await self._write(op)


async def _count(conn: Conn, sql: str, *args: Any) -> int:
    return int(await conn.fetchval(sql, *args))


async def _device_counts(conn: Conn, device_id: int) -> dict[str, int]:
    gone = f"SELECT COUNT(*) FROM messages WHERE {_DEVICE_MESSAGES} AND NOT ({_BACK_TO_POOL})"
    return {
        "sims": await _count(conn, "SELECT COUNT(*) FROM sims WHERE device_id = $1", device_id),
        "messages": await _count(conn, gone, device_id),
        "unsent_messages": await _count(conn, f"{gone} AND status IN ({_UNSENT_SQL})", device_id),
        "incoming_messages": await _count(conn, f"{gone} AND direction = 'in'", device_id),
        "messages_back_to_pool": await _count(
            conn, f"SELECT COUNT(*) FROM messages WHERE {_BACK_TO_POOL}", device_id
        ),
    }


async def _account_counts(conn: Conn, account_id: int) -> dict[str, int]:
    a = account_id
    unsent = f"SELECT COUNT(*) FROM messages WHERE account_id = $1 AND status IN ({_UNSENT_SQL})"
    return {
        "messages": await _count(conn, "SELECT COUNT(*) FROM messages WHERE account_id = $1", a),
        "unsent_messages": await _count(conn, unsent, a),
        "pools": await _count(
            conn, "SELECT COUNT(*) FROM pools WHERE account_id = $1 AND kind = 'named'", a
        ),
        "tags": await _count(conn, "SELECT COUNT(*) FROM tags WHERE account_id = $1", a),
        "contacts": await _count(conn, "SELECT COUNT(*) FROM contacts WHERE account_id = $1", a),
    }


async def _run(conn: Conn, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    try:
        for sql, args in statements:
            await conn.execute(sql, *args)
    except asyncpg.ForeignKeyViolationError as exc:  # a table not known here refers to the row
        raise StoreError(f"cannot delete: rows elsewhere still refer to it ({exc})") from None


async def _delete_device(conn: Conn, device_id: int, now: int) -> None:
    d = (device_id,)
    mine = f"SELECT id FROM messages WHERE {_DEVICE_MESSAGES}"
    await _run(conn, [
        (f"UPDATE messages SET {requeue('$2')} WHERE {_BACK_TO_POOL}", (device_id, now)),
        (f"DELETE FROM message_parts WHERE sms_id IN ({mine})", d),
        (f"DELETE FROM message_history WHERE sms_id IN ({mine})", d),
        ("DELETE FROM incoming_keys WHERE device_id = $1", d),
        ("DELETE FROM applied_events WHERE device_id = $1", d),
        ("DELETE FROM webhook_outbox WHERE device_id = $1", d),
        (f"DELETE FROM messages WHERE {_DEVICE_MESSAGES}", d),
        ("DELETE FROM pakets WHERE device_id = $1", d),
        ("DELETE FROM device_events WHERE device_id = $1", d),
        ("DELETE FROM sims WHERE device_id = $1", d),
        ("DELETE FROM sim_ready WHERE device_id = $1", d),
        ("DELETE FROM pool_sims WHERE device_id = $1", d),
        ("DELETE FROM pool_sticky WHERE device_id = $1", d),
        ("DELETE FROM pools WHERE kind = 'device' AND device_id = $1", d),
        ("DELETE FROM devices WHERE id = $1", d),
    ])  # fmt: skip


async def _delete_account(conn: Conn, account_id: int) -> None:
    a = (account_id,)
    mine = "SELECT id FROM messages WHERE account_id = $1"
    await _run(conn, [
        (f"DELETE FROM message_parts WHERE sms_id IN ({mine})", a),
        (f"DELETE FROM message_history WHERE sms_id IN ({mine})", a),
        ("DELETE FROM messages WHERE account_id = $1", a),
        ("DELETE FROM pakets WHERE account_id = $1", a),
        ("DELETE FROM contacts WHERE account_id = $1", a),
        ("DELETE FROM tags WHERE account_id = $1", a),
        ("DELETE FROM pools WHERE account_id = $1", a),
        ("DELETE FROM idempotency_keys WHERE account_id = $1", a),
        ("DELETE FROM api_keys WHERE account_id = $1", a),
        ("DELETE FROM account_quotas WHERE account_id = $1", a),
        ("DELETE FROM quota_usage WHERE account_id = $1", a),
        ("DELETE FROM templates WHERE account_id = $1", a),
        ("DELETE FROM account_message_counts WHERE account_id = $1", a),
        ("DELETE FROM account_tokens WHERE account_id = $1", a),
        ("DELETE FROM accounts WHERE id = $1", a),
    ])  # fmt: skip
