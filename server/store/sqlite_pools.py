"""Pools in the SQLite store: the pools themselves, their members, and who to wake for them.

The binding of pool messages to a SIM happens in the lease transaction (sqlite_lease.py); this
module keeps the pool records and the SQL that the lease, the release and the sweeper share.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from simhive.server.core.errors import AlreadyExists, Conflict, NotFound
from simhive.server.core.pools import ACCOUNT_POOL, Pool, PoolSim, device_pool_name
from simhive.server.store.sqlite_rows import columns, row_reader

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

POOL_COLS = columns(Pool)
pool_row = row_reader(Pool)

# Back to the queue: a pinned message keeps its device, a pool message loses it (and leaves on
# whichever SIM asks next). The first parameter is `now`.
REQUEUE_SET = (
    "status = 1, lease_id = NULL, lease_expires = NULL, status_changed = ?,"
    " device_id = CASE WHEN pool_id IS NULL THEN device_id END"
)

# The pools a SIM (device ?, slot ?) belongs to; parameters: account, device, device, slot.
SIM_POOLS_SQL = (
    "SELECT id FROM pools WHERE account_id = ? AND (kind = 'account'"
    " OR (kind = 'device' AND device_id = ?)"
    " OR (kind = 'named' AND id IN (SELECT pool_id FROM pool_sims WHERE device_id = ?"
    " AND slot = ?)))"
)


def wake_devices(conn: sqlite3.Connection, pool_ids: Sequence[int]) -> set[int]:
    """The devices with a SIM in any of these pools: their parked pulls may take the pools'
    messages."""
    if not pool_ids:
        return set()
    marks = ",".join("?" * len(pool_ids))
    sql = (
        "SELECT d.id FROM pools p JOIN devices d ON d.account_id = p.account_id"
        f" WHERE p.id IN ({marks}) AND (p.kind = 'account'"
        " OR (p.kind = 'device' AND d.id = p.device_id)"
        " OR (p.kind = 'named' AND d.id IN (SELECT device_id FROM pool_sims WHERE pool_id = p.id)))"
    )
    return {int(r[0]) for r in conn.execute(sql, list(pool_ids))}


class SqlitePoolStore:
    """Mixed into SqliteStore; needs its `writer` and `_all`."""

    writer: GroupCommitWriter

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore

    async def create_pool(
        self, account_id: int, name: str, strategy: str, sticky: bool, now: int
    ) -> Pool:
        def op(conn: sqlite3.Connection) -> Pool:
            try:
                cur = conn.execute(
                    "INSERT INTO pools(account_id, name, kind, strategy, sticky, created)"
                    " VALUES (?, ?, 'named', ?, ?, ?)",
                    (account_id, name, strategy, int(sticky), now),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists(f"Pool {name!r} exists already") from None
            return _pool(conn, "id = ?", (cur.lastrowid,))

        return await self.writer.submit(op)

    async def implicit_pool(self, account_id: int, device_id: int | None, now: int) -> Pool:
        """The account's pool `all` (device_id None) or a device's own pool, made on first use."""
        kind, name = ("account", ACCOUNT_POOL) if device_id is None else (
            "device", device_pool_name(device_id))  # fmt: skip

        def op(conn: sqlite3.Connection) -> Pool:
            conn.execute(
                "INSERT OR IGNORE INTO pools(account_id, name, kind, device_id, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (account_id, name, kind, device_id, now),
            )
            return _pool(conn, "account_id = ? AND name = ?", (account_id, name))

        found = await self.pool_by_name(account_id, name)
        return found if found is not None else await self.writer.submit(op)

    async def pool_by_name(self, account_id: int, name: str) -> Pool | None:
        rows = await self._all(
            f"SELECT {POOL_COLS} FROM pools WHERE account_id = ? AND name = ?", (account_id, name)
        )
        return pool_row(rows[0]) if rows else None

    async def list_pools(self, account_id: int) -> list[Pool]:
        rows = await self._all(
            f"SELECT {POOL_COLS} FROM pools WHERE account_id = ? ORDER BY name", (account_id,)
        )
        return [pool_row(r) for r in rows]

    async def update_pool(
        self, pool_id: int, *, strategy: str | None = None, sticky: bool | None = None
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE pools SET strategy = COALESCE(?, strategy),"
                " sticky = COALESCE(?, sticky) WHERE id = ?",
                (strategy, None if sticky is None else int(sticky), pool_id),
            )
            if strategy is not None:  # a new strategy starts from a fresh cycle
                conn.execute("UPDATE pool_sims SET used = 0 WHERE pool_id = ?", (pool_id,))

        await self.writer.submit(op)

    async def delete_pool(self, pool_id: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            waiting = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE pool_id = ? AND status IN (1, 2, 3)",
                (pool_id,),
            ).fetchone()[0]
            if waiting:
                raise Conflict(f"{waiting} message(s) of this pool are not sent yet")
            # Sent messages keep their device and SIM; only the link to the pool goes.
            conn.execute("UPDATE messages SET pool_id = NULL WHERE pool_id = ?", (pool_id,))
            conn.execute("DELETE FROM pools WHERE id = ?", (pool_id,))

        await self.writer.submit(op)

    async def set_pool_sim(self, pool_id: int, device_id: int, slot: int, weight: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO pool_sims(pool_id, device_id, slot, weight) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(pool_id, device_id, slot) DO UPDATE SET weight = excluded.weight",
                (pool_id, device_id, slot, weight),
            )

        await self.writer.submit(op)

    async def remove_pool_sim(self, pool_id: int, device_id: int, slot: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "DELETE FROM pool_sims WHERE pool_id = ? AND device_id = ? AND slot = ?",
                (pool_id, device_id, slot),
            )
            if not cur.rowcount:
                raise NotFound("That SIM is not in the pool")

        await self.writer.submit(op)

    async def pool_sims(self, pool_id: int) -> list[PoolSim]:
        rows = await self._all(
            "SELECT device_id, slot, weight, used FROM pool_sims WHERE pool_id = ?"
            " ORDER BY device_id, slot",
            (pool_id,),
        )
        return [PoolSim(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]

    async def pool_waiting(self, pool_id: int) -> int:
        rows = await self._all(
            "SELECT COUNT(*) FROM messages WHERE pool_id = ? AND status = 1 AND device_id IS NULL",
            (pool_id,),
        )
        return int(rows[0][0])

    async def pool_wake_candidates(self, pool_id: int, seen_after: int, limit: int) -> set[int]:
        rows = await self._all(
            "SELECT r.device_id FROM pools p JOIN devices d ON d.account_id = p.account_id"
            " JOIN sim_ready r ON r.device_id = d.id"
            " WHERE p.id = ? AND r.ready = 1 AND r.pool_room > 0 AND d.enabled = 1"
            " AND d.lastseen >= ? AND (p.kind = 'account'"
            " OR (p.kind = 'device' AND d.id = p.device_id)"
            " OR (p.kind = 'named' AND EXISTS (SELECT 1 FROM pool_sims ps WHERE"
            " ps.pool_id = p.id AND ps.device_id = r.device_id AND ps.slot = r.slot)))"
            " GROUP BY r.device_id ORDER BY MAX(r.pool_room) DESC, random() LIMIT ?",
            (pool_id, seen_after, limit),
        )
        return {int(r[0]) for r in rows}


def _pool(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> Pool:
    row = conn.execute(f"SELECT {POOL_COLS} FROM pools WHERE {where}", params).fetchone()
    return pool_row(row)
