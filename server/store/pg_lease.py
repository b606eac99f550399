"""The per-SIM lease on PostgreSQL: sqlite_lease.py's algorithm (docs/routing.md), for servers that
lease concurrently instead of one writer thread doing it all.

What keeps concurrent leases apart:
- the device row is locked first (every agent call stamps `lastseen`), so one device's leases,
  commits and reports run one after another whichever servers they reach;
- candidate messages are read `FOR UPDATE SKIP LOCKED`: a message another lease is looking at
  is skipped, never taken twice, and never waited for;
- pools whose choice depends on shared counters (full rotation, least-loaded, sticky) are locked
  in id order before any message, so their counters move as under one writer; `partial` pools
  without stickiness need no lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg

from simhive.server.core.pools import (
    LEAST_LOADED_PATIENCE_US,
    Pool,
    PoolSim,
    SimOffer,
    full_turns,
    least_loaded_share,
    partial_takes,
)
from simhive.server.store.pg_pools import requeue, sim_pools_sql
from simhive.server.store.sqlite_lease import (
    _LEAST_LOADED_COUNT_CAP,
    _LOOKAHEAD,
    MAX_REASON_CHARS,
    _Candidate,
    _PoolView,
)
from simhive.server.store.sqlite_pools import POOL_COLS, pool_row

Sim = tuple[int, int]
Conn = asyncpg.Connection


async def record_offers(conn: Conn, device_id: int, offers: Sequence[SimOffer], now: int) -> None:
    """Store what the pull says of each SIM; a SIM the pull leaves out is not ready."""
    await conn.execute(
        "UPDATE sim_ready SET ready = 0, pool_room = 0, reason = 'not offered by the agent',"
        " offered = $1 WHERE device_id = $2",
        now, device_id,
    )  # fmt: skip
    if not offers:
        return
    await conn.executemany(
        "INSERT INTO sim_ready(device_id, slot, ready, reason, pool_room, offered)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT(device_id, slot) DO UPDATE SET"
        " ready = excluded.ready, reason = excluded.reason, pool_room = excluded.pool_room,"
        " offered = excluded.offered",
        [
            (device_id, o.slot, int(o.ready), "" if o.ready else o.reason[:MAX_REASON_CHARS],
             o.pool_room if o.ready else 0, now)
            for o in offers
        ],
    )  # fmt: skip


async def requeue_expired(conn: Conn, where: str, *args: object) -> list[asyncpg.Record]:
    """Expired leases matching `where` back to the queue, skipping rows another transaction
    holds (it is handing them out or committing them); returns their (device_id, pool_id) as
    they were. The time is the first parameter."""
    return list(
        await conn.fetch(
            "WITH x AS (SELECT id AS xid, device_id AS was_device, pool_id AS was_pool"
            f" FROM messages WHERE status = 2 AND lease_expires < $1 AND {where}"
            f" FOR UPDATE SKIP LOCKED) UPDATE messages SET {requeue('$1')} FROM x"
            " WHERE id = x.xid RETURNING x.was_device, x.was_pool",
            *args,
        )
    )


async def lease_sims(
    conn: Conn,
    device_id: int,
    offers: Sequence[SimOffer],
    limit: int,
    lease_id: str,
    now: int,
    expires: int,
    seen_after: int,
    rand: Callable[[], float],
) -> tuple[list[int], set[int]]:
    """Lease the device's work; returns (leased ids in lease order, pools still waiting)."""
    account_id = await conn.fetchval(
        "UPDATE devices SET lastseen = $1 WHERE id = $2 RETURNING account_id", now, device_id
    )
    await requeue_expired(conn, "device_id = $2", now, device_id)
    pooled_slots = [o.slot for o in offers if o.ready and o.room > 0 and o.pool_room > 0]
    if pooled_slots:
        await conn.execute(
            f"SELECT id FROM pools WHERE id IN ({sim_pools_sql('$1', '$2', '$3')})"
            " AND (strategy <> 'partial' OR sticky = 1) ORDER BY id FOR UPDATE",
            account_id, device_id, pooled_slots,
        )  # fmt: skip
    leased: list[int] = []
    still_waiting: set[int] = set()
    for offer in sorted(offers, key=lambda o: (-o.pool_room, o.slot)):
        room = min(offer.room, limit - len(leased))
        if not offer.ready or room <= 0:
            continue
        me = (device_id, offer.slot)
        views: dict[int, _PoolView] = {}
        pinned = [
            _Candidate(int(r[0]), None, int(r[1]), int(r[2]))
            for r in await conn.fetch(
                "SELECT id, urgent, due FROM messages WHERE device_id = $1 AND sim = $2"
                " AND status = 1 AND due <= $3 ORDER BY urgent DESC, due, id LIMIT $4"
                " FOR UPDATE SKIP LOCKED",
                device_id,
                offer.slot,
                now,
                room,
            )  # fmt: skip
        ]
        pooled: list[_Candidate] = []
        if offer.pool_room > 0:
            pooled = await _pool_candidates(
                conn, int(account_id), me, min(offer.pool_room, room), now, seen_after, views,
                still_waiting, rand,
            )  # fmt: skip
        chosen = sorted(pinned + pooled, key=_Candidate.order)[:room]
        await _take(conn, me, chosen, views, lease_id, now, expires)
        leased += [c.id for c in chosen]
        if len(chosen) < len(pinned) + len(pooled):
            still_waiting |= {c.pool_id for c in pooled if c.pool_id is not None}
    return leased, still_waiting


async def _pool_candidates(
    conn: Conn,
    account_id: int,
    me: Sim,
    pool_room: int,
    now: int,
    seen_after: int,
    views: dict[int, _PoolView],
    still_waiting: set[int],
    rand: Callable[[], float],
) -> list[_Candidate]:
    pools = [
        pool_row(r)
        for r in await conn.fetch(
            f"SELECT {POOL_COLS} FROM pools WHERE id IN ({sim_pools_sql('$1', '$2', '$3')})",
            account_id,
            me[0],
            [me[1]],
        )  # fmt: skip
    ]
    if not pools:
        return []
    rows = await conn.fetch(
        "SELECT id, pool_id, urgent, due, sendto FROM messages"
        " WHERE pool_id = ANY($1::bigint[]) AND status = 1 AND device_id IS NULL AND due <= $2"
        " ORDER BY urgent DESC, due, id LIMIT $3 FOR UPDATE SKIP LOCKED",
        [p.id for p in pools], now, pool_room + _LOOKAHEAD,
    )  # fmt: skip
    by_id = {p.id: p for p in pools}
    picked: list[_Candidate] = []
    for r in rows:
        cand = _Candidate(int(r[0]), int(r[1]), int(r[2]), int(r[3]), str(r[4]))
        pool_id = int(r[1])
        view = views.get(pool_id)
        if view is None:
            view = views[pool_id] = await _view(conn, by_id[pool_id], me, now, seen_after)
        if len(picked) >= pool_room or not await _may_take(conn, view, me, cand, now, rand):
            still_waiting.add(pool_id)
            continue
        view.quota -= 1
        picked.append(cand)
    return picked


async def _view(conn: Conn, pool: Pool, me: Sim, now: int, seen_after: int) -> _PoolView:
    simple = pool.strategy == "partial" and not pool.sticky and pool.kind != "named"
    healthy, rooms = ({}, {}) if simple else await _healthy(conn, pool, seen_after)
    view = _PoolView(pool, healthy, quota=1 << 30)
    mine = healthy.get(me, PoolSim(me[0], me[1]))
    if pool.strategy == "full":
        view.quota, view.reset = full_turns(mine, list(healthy.values()))
    elif pool.strategy == "least-loaded":
        weighted = {sim: rooms[sim] * m.weight for sim, m in healthy.items()}
        waiting = await conn.fetchval(
            "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE pool_id = $1 AND status = 1"
            " AND device_id IS NULL AND due <= $2 LIMIT $3) w",
            pool.id, now, _LEAST_LOADED_COUNT_CAP,
        )  # fmt: skip
        view.quota = least_loaded_share(me, weighted, int(waiting))
    return view


async def _healthy(
    conn: Conn, pool: Pool, seen_after: int
) -> tuple[dict[Sim, PoolSim], dict[Sim, int]]:
    if pool.kind == "named":
        rows = await conn.fetch(
            "SELECT ps.device_id, ps.slot, ps.weight, ps.used, r.pool_room FROM pool_sims ps"
            " JOIN sim_ready r ON r.device_id = ps.device_id AND r.slot = ps.slot"
            " JOIN devices d ON d.id = ps.device_id"
            " WHERE ps.pool_id = $1 AND r.ready = 1 AND d.enabled = 1 AND d.lastseen >= $2",
            pool.id, seen_after,
        )  # fmt: skip
    else:
        owner = "d.account_id = $2" if pool.kind == "account" else "d.id = $2"
        key = pool.account_id if pool.kind == "account" else int(pool.device_id or 0)
        rows = await conn.fetch(
            "SELECT r.device_id, r.slot, COALESCE(ps.weight, 1), COALESCE(ps.used, 0),"
            " r.pool_room FROM sim_ready r JOIN devices d ON d.id = r.device_id"
            " LEFT JOIN pool_sims ps ON ps.pool_id = $1 AND ps.device_id = r.device_id"
            " AND ps.slot = r.slot"
            f" WHERE {owner} AND r.ready = 1 AND d.enabled = 1 AND d.lastseen >= $3",
            pool.id, key, seen_after,
        )  # fmt: skip
    healthy: dict[Sim, PoolSim] = {}
    rooms: dict[Sim, int] = {}
    for d, s, w, u, room in rows:
        healthy[(int(d), int(s))] = PoolSim(int(d), int(s), int(w), int(u))
        rooms[(int(d), int(s))] = int(room)
    return healthy, rooms


async def _may_take(
    conn: Conn, view: _PoolView, me: Sim, cand: _Candidate, now: int, rand: Callable[[], float]
) -> bool:
    pool = view.pool
    if pool.sticky:
        row = await conn.fetchrow(
            "SELECT device_id, slot FROM pool_sticky WHERE pool_id = $1 AND sendto = $2",
            pool.id, cand.sendto,
        )  # fmt: skip
        if row is not None:
            owner = (int(row[0]), int(row[1]))
            if owner != me and owner in view.healthy:
                return False
            if owner == me:
                return True
    if view.quota <= 0:
        return pool.strategy == "least-loaded" and cand.due + LEAST_LOADED_PATIENCE_US < now
    if pool.strategy == "partial" and view.healthy:
        top = max(m.weight for m in view.healthy.values())
        mine = view.healthy.get(me, PoolSim(me[0], me[1]))
        return partial_takes(mine.weight, top, rand)
    return True


async def _take(
    conn: Conn,
    me: Sim,
    chosen: list[_Candidate],
    views: dict[int, _PoolView],
    lease_id: str,
    now: int,
    expires: int,
) -> None:
    if not chosen:
        return
    await conn.execute(
        "UPDATE messages SET status = 2, lease_id = $1, lease_expires = $2,"
        " attempt = attempt + 1, status_changed = $3, device_id = $4, sim = $5"
        " WHERE id = ANY($6::bigint[])",
        lease_id, expires, now, me[0], me[1], [c.id for c in chosen],
    )  # fmt: skip
    per_pool: dict[int, list[_Candidate]] = {}
    for c in chosen:
        if c.pool_id is not None:
            per_pool.setdefault(c.pool_id, []).append(c)
    for pool_id, taken in per_pool.items():
        view = views[pool_id]
        if view.pool.strategy == "full":
            if view.reset:
                await conn.execute("UPDATE pool_sims SET used = 0 WHERE pool_id = $1", pool_id)
                await conn.execute("UPDATE pools SET cycle = cycle + 1 WHERE id = $1", pool_id)
                view.reset = False
            await conn.execute(
                "INSERT INTO pool_sims(pool_id, device_id, slot, used) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT(pool_id, device_id, slot) DO UPDATE"
                " SET used = pool_sims.used + excluded.used",
                pool_id, me[0], me[1], len(taken),
            )  # fmt: skip
        if view.pool.sticky:
            await conn.executemany(
                "INSERT INTO pool_sticky(pool_id, sendto, device_id, slot, updated)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT(pool_id, sendto) DO UPDATE SET"
                " device_id = excluded.device_id, slot = excluded.slot,"
                " updated = excluded.updated",
                [(pool_id, c.sendto, me[0], me[1], now) for c in taken],
            )
