"""Pools in the PostgreSQL store (the twin of sqlite_pools.py): pool records, their members, who to
wake for them, and the SQL the lease, the release and the sweeper share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.core.errors import Conflict, NotFound
from simhive.server.core.pools import ACCOUNT_POOL, Pool, PoolSim, device_pool_name
from simhive.server.store.base import PoolStore
from simhive.server.store.sqlite_pools import POOL_COLS, pool_row

T = TypeVar("T")

# Back to the queue (as sqlite_pools.REQUEUE_SET): a pinned message keeps its device, a pool
# message loses it. `{now}` is the parameter holding the time.
REQUEUE_SET = (
    "status = 1, lease_id = NULL, lease_expires = NULL, status_changed = {now},"
    " device_id = CASE WHEN pool_id IS NULL THEN device_id END"
)


def requeue(now: str) -> str:
    return REQUEUE_SET.format(now=now)


# The pools of the SIMs `slots` of device `device` in account `account` (parameter names).
def sim_pools_sql(account: str, device: str, slots: str) -> str:
    return (
        f"SELECT id FROM pools WHERE account_id = {account} AND (kind = 'account'"
        f" OR (kind = 'device' AND device_id = {device})"
        f" OR (kind = 'named' AND id IN (SELECT pool_id FROM pool_sims WHERE device_id = {device}"
        f" AND slot = ANY({slots}))))"
    )


async def wake_devices(conn: asyncpg.Connection, pool_ids: Sequence[int]) -> set[int]:
    """The devices with a SIM in any of these pools."""
    if not pool_ids:
        return set()
    rows = await conn.fetch(
        "SELECT d.id FROM pools p JOIN devices d ON d.account_id = p.account_id"
        " WHERE p.id = ANY($1::bigint[]) AND (p.kind = 'account'"
        " OR (p.kind = 'device' AND d.id = p.device_id)"
        " OR (p.kind = 'named' AND d.id IN (SELECT device_id FROM pool_sims"
        " WHERE pool_id = p.id)))",
        list(pool_ids),
    )
    return {int(r[0]) for r in rows}


async def _pool(conn: asyncpg.Connection, where: str, *args: Any) -> Pool:
    row = await conn.fetchrow(f"SELECT {POOL_COLS} FROM pools WHERE {where}", *args)
    return pool_row(row)


class PgPoolStore(PoolStore):
    """Mixed into PgStore; needs its `_write` and `_all`."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def create_pool(
        self, account_id: int, name: str, strategy: str, sticky: bool, now: int
    ) -> Pool:
        async def op(conn: asyncpg.Connection) -> Pool:
            pool_id = await conn.fetchval(
                "INSERT INTO pools(account_id, name, kind, strategy, sticky, created)"
                " VALUES ($1, $2, 'named', $3, $4, $5) ON CONFLICT (account_id, name) DO NOTHING"
                " RETURNING id",
                account_id, name, strategy, int(sticky), now,
            )  # fmt: skip
            if pool_id is None:
                raise Conflict(f"Pool {name!r} exists already")
            return await _pool(conn, "id = $1", pool_id)

        return await self._write(op)

    async def implicit_pool(self, account_id: int, device_id: int | None, now: int) -> Pool:
        kind, name = ("account", ACCOUNT_POOL) if device_id is None else (
            "device", device_pool_name(device_id))  # fmt: skip

        async def op(conn: asyncpg.Connection) -> Pool:
            await conn.execute(
                "INSERT INTO pools(account_id, name, kind, device_id, created)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, name) DO NOTHING",
                account_id, name, kind, device_id, now,
            )  # fmt: skip
            return await _pool(conn, "account_id = $1 AND name = $2", account_id, name)

        found = await self.pool_by_name(account_id, name)
        return found if found is not None else await self._write(op)

    async def pool_by_name(self, account_id: int, name: str) -> Pool | None:
        rows = await self._all(
            f"SELECT {POOL_COLS} FROM pools WHERE account_id = $1 AND name = $2", account_id, name
        )
        return pool_row(rows[0]) if rows else None

    async def list_pools(self, account_id: int) -> list[Pool]:
        rows = await self._all(
            f"SELECT {POOL_COLS} FROM pools WHERE account_id = $1 ORDER BY name", account_id
        )
        return [pool_row(r) for r in rows]

    async def update_pool(
        self, pool_id: int, *, strategy: str | None = None, sticky: bool | None = None
    ) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "UPDATE pools SET strategy = COALESCE($1, strategy),"
                " sticky = COALESCE($2, sticky) WHERE id = $3",
                strategy, None if sticky is None else int(sticky), pool_id,
            )  # fmt: skip
            if strategy is not None:  # a new strategy starts from a fresh cycle
                await conn.execute("UPDATE pool_sims SET used = 0 WHERE pool_id = $1", pool_id)

        await self._write(op)

    async def delete_pool(self, pool_id: int) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            # The pool row's lock keeps a lease of another server from binding its messages
            # while we look (leases lock the pools they take from, pg_lease.py).
            await conn.execute("SELECT 1 FROM pools WHERE id = $1 FOR UPDATE", pool_id)
            waiting = await conn.fetchval(
                "SELECT COUNT(*) FROM messages WHERE pool_id = $1 AND status IN (1, 2, 3)",
                pool_id,
            )
            if waiting:
                raise Conflict(f"{waiting} message(s) of this pool are not sent yet")
            await conn.execute("UPDATE messages SET pool_id = NULL WHERE pool_id = $1", pool_id)
            await conn.execute("DELETE FROM pools WHERE id = $1", pool_id)

        await self._write(op)

    async def set_pool_sim(self, pool_id: int, device_id: int, slot: int, weight: int) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            await conn.execute(
                "INSERT INTO pool_sims(pool_id, device_id, slot, weight) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT(pool_id, device_id, slot) DO UPDATE SET weight = excluded.weight",
                pool_id, device_id, slot, weight,
            )  # fmt: skip

        await self._write(op)

    async def remove_pool_sim(self, pool_id: int, device_id: int, slot: int) -> None:
        async def op(conn: asyncpg.Connection) -> None:
            status = await conn.execute(
                "DELETE FROM pool_sims WHERE pool_id = $1 AND device_id = $2 AND slot = $3",
                pool_id, device_id, slot,
            )  # fmt: skip
            if status.split()[-1] == "0":
                raise NotFound("That SIM is not in the pool")

        await self._write(op)

    async def pool_sims(self, pool_id: int) -> list[PoolSim]:
        rows = await self._all(
            "SELECT device_id, slot, weight, used FROM pool_sims WHERE pool_id = $1"
            " ORDER BY device_id, slot",
            pool_id,
        )
        return [PoolSim(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]

    async def pool_waiting(self, pool_id: int) -> int:
        rows = await self._all(
            "SELECT COUNT(*) FROM messages WHERE pool_id = $1 AND status = 1 AND device_id IS NULL",
            pool_id,
        )
        return int(rows[0][0])

    async def pool_wake_candidates(self, pool_id: int, seen_after: int, limit: int) -> set[int]:
        rows = await self._all(
            "SELECT r.device_id FROM pools p JOIN devices d ON d.account_id = p.account_id"
            " JOIN sim_ready r ON r.device_id = d.id"
            " WHERE p.id = $1 AND r.ready = 1 AND r.pool_room > 0 AND d.enabled = 1"
            " AND d.lastseen >= $2 AND (p.kind = 'account'"
            " OR (p.kind = 'device' AND d.id = p.device_id)"
            " OR (p.kind = 'named' AND EXISTS (SELECT 1 FROM pool_sims ps WHERE"
            " ps.pool_id = p.id AND ps.device_id = r.device_id AND ps.slot = r.slot)))"
            " GROUP BY r.device_id ORDER BY MAX(r.pool_room) DESC, random() LIMIT $3",
            pool_id, seen_after, limit,
        )  # fmt: skip
        return {int(r[0]) for r in rows}
