"""The per-SIM lease: one transaction that hands a pulling device its pinned work and binds pool
messages to its ready SIMs (late binding, docs/routing.md).

Runs in the single writer thread, so the rotation counters, stickiness and "is this message still
unbound" checks never race with another device's pull. Each SIM gets at most its `room` messages,
of which at most `pool_room` from pools; urgent first, then due, then id, across both kinds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from simhive.server.core.pools import (
    LEAST_LOADED_PATIENCE_US,
    Pool,
    PoolSim,
    SimOffer,
    full_turns,
    least_loaded_share,
    partial_takes,
)
from simhive.server.store.sqlite_pools import POOL_COLS, REQUEUE_SET, SIM_POOLS_SQL, pool_row

Sim = tuple[int, int]  # (device id, slot)
# How many more queued pool messages than it may take a SIM looks at: room to skip messages that
# stick to another SIM or exceed a pool's quota without a second query.
_LOOKAHEAD = 16
_LEAST_LOADED_COUNT_CAP = 1000
MAX_REASON_CHARS = 200


@dataclass(slots=True)
class _Candidate:
    id: int
    pool_id: int | None  # None: pinned
    urgent: int
    due: int
    sendto: str = ""

    def order(self) -> tuple[int, int, int]:
        return (-self.urgent, self.due, self.id)


@dataclass(slots=True)
class _PoolView:
    """What the lease needs to know of one pool, read once per lease."""

    pool: Pool
    healthy: dict[Sim, PoolSim]  # members that may get work now (empty when not needed)
    quota: int  # messages the asking SIM may still take from it in this lease
    reset: bool = False  # full rotation: a new cycle starts with this SIM's turn


def record_offers(
    conn: sqlite3.Connection, device_id: int, offers: Sequence[SimOffer], now: int
) -> None:
    """Store what the pull says of each SIM; a SIM the pull leaves out is not ready."""
    conn.execute(
        "UPDATE sim_ready SET ready = 0, pool_room = 0, reason = 'not offered by the agent',"
        " offered = ? WHERE device_id = ?",
        (now, device_id),
    )
    conn.executemany(
        "INSERT INTO sim_ready(device_id, slot, ready, reason, pool_room, offered)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(device_id, slot) DO UPDATE SET"
        " ready = excluded.ready, reason = excluded.reason, pool_room = excluded.pool_room,"
        " offered = excluded.offered",
        [
            (device_id, o.slot, int(o.ready), "" if o.ready else o.reason[:MAX_REASON_CHARS],
             o.pool_room if o.ready else 0, now)
            for o in offers
        ],
    )  # fmt: skip


def lease_sims(
    conn: sqlite3.Connection,
    device_id: int,
    offers: Sequence[SimOffer],
    limit: int,
    lease_id: str,
    now: int,
    expires: int,
    seen_after: int,
    rand: Callable[[], float],
) -> tuple[list[int], set[int]]:
    """Lease the device's work; returns (leased ids in lease order, ids of pools that still
    have messages waiting, whose other SIMs should be woken)."""
    (account_id,) = conn.execute(
        "SELECT account_id FROM devices WHERE id = ?", (device_id,)
    ).fetchone()
    conn.execute(
        f"UPDATE messages SET {REQUEUE_SET} WHERE device_id = ? AND status = 2"
        " AND lease_expires < ?",
        (now, device_id, now),
    )
    # The offers themselves were stored when the pull began (offer_sims): a long poll's lease
    # uses them as they were said, and need not write them again.
    conn.execute("UPDATE devices SET lastseen = ? WHERE id = ?", (now, device_id))
    leased: list[int] = []
    still_waiting: set[int] = set()
    # The SIM with the most pool room first: it is the one least-loaded would choose anyway.
    for offer in sorted(offers, key=lambda o: (-o.pool_room, o.slot)):
        room = min(offer.room, limit - len(leased))
        if not offer.ready or room <= 0:
            continue
        me = (device_id, offer.slot)
        views: dict[int, _PoolView] = {}  # per SIM: quotas are the asking SIM's
        pinned = [
            _Candidate(int(r[0]), None, int(r[1]), int(r[2]))
            for r in conn.execute(
                "SELECT id, urgent, due FROM messages WHERE device_id = ? AND sim = ?"
                " AND status = 1 AND due <= ? ORDER BY urgent DESC, due, id LIMIT ?",
                (device_id, offer.slot, now, room),
            )
        ]
        pooled: list[_Candidate] = []
        if offer.pool_room > 0:
            pooled = _pool_candidates(
                conn, account_id, me, min(offer.pool_room, room), now, seen_after, views,
                still_waiting, rand,
            )  # fmt: skip
        chosen = sorted(pinned + pooled, key=_Candidate.order)[:room]
        _take(conn, me, chosen, views, lease_id, now, expires)
        leased += [c.id for c in chosen]
        if len(chosen) < len(pinned) + len(pooled):
            still_waiting |= {c.pool_id for c in pooled if c.pool_id is not None}
    return leased, still_waiting


def _pool_candidates(
    conn: sqlite3.Connection,
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
        for r in conn.execute(
            f"SELECT {POOL_COLS} FROM pools WHERE id IN ({SIM_POOLS_SQL})",
            (account_id, me[0], me[0], me[1]),
        )
    ]
    if not pools:
        return []
    marks = ",".join("?" * len(pools))
    rows = conn.execute(
        "SELECT id, pool_id, urgent, due, sendto FROM messages"
        f" WHERE pool_id IN ({marks}) AND status = 1 AND device_id IS NULL AND due <= ?"
        " ORDER BY urgent DESC, due, id LIMIT ?",
        (*[p.id for p in pools], now, pool_room + _LOOKAHEAD),
    ).fetchall()
    by_id = {p.id: p for p in pools}
    picked: list[_Candidate] = []
    for r in rows:
        cand = _Candidate(int(r[0]), int(r[1]), int(r[2]), int(r[3]), str(r[4]))
        pool_id = int(r[1])
        view = views.get(pool_id)
        if view is None:
            view = views[pool_id] = _view(conn, by_id[pool_id], me, now, seen_after)
        if len(picked) >= pool_room or not _may_take(conn, view, me, cand, now, rand):
            still_waiting.add(pool_id)
            continue
        view.quota -= 1
        picked.append(cand)
    return picked


def _view(conn: sqlite3.Connection, pool: Pool, me: Sim, now: int, seen_after: int) -> _PoolView:
    simple = pool.strategy == "partial" and not pool.sticky and pool.kind != "named"
    healthy, rooms = ({}, {}) if simple else _healthy(conn, pool, seen_after)
    view = _PoolView(pool, healthy, quota=1 << 30)
    mine = healthy.get(me, PoolSim(me[0], me[1]))
    if pool.strategy == "full":
        view.quota, view.reset = full_turns(mine, list(healthy.values()))
    elif pool.strategy == "least-loaded":
        weighted = {sim: rooms[sim] * m.weight for sim, m in healthy.items()}
        (waiting,) = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE pool_id = ? AND status = 1"
            " AND device_id IS NULL AND due <= ? LIMIT ?)",
            (pool.id, now, _LEAST_LOADED_COUNT_CAP),
        ).fetchone()
        view.quota = least_loaded_share(me, weighted, int(waiting))
    return view


def _healthy(
    conn: sqlite3.Connection, pool: Pool, seen_after: int
) -> tuple[dict[Sim, PoolSim], dict[Sim, int]]:
    """Members of the pool that may get work now (their SIM said it is ready in its device's
    latest pull, and the device was seen since `seen_after` and is enabled), and the pool room
    each offered in that pull."""
    if pool.kind == "named":
        sql = (
            "SELECT ps.device_id, ps.slot, ps.weight, ps.used, r.pool_room FROM pool_sims ps"
            " JOIN sim_ready r ON r.device_id = ps.device_id AND r.slot = ps.slot"
            " JOIN devices d ON d.id = ps.device_id"
            " WHERE ps.pool_id = ? AND r.ready = 1 AND d.enabled = 1 AND d.lastseen >= ?"
        )
        params: tuple[int, ...] = (pool.id, seen_after)
    else:
        owner = "d.account_id = ?" if pool.kind == "account" else "d.id = ?"
        sql = (
            "SELECT r.device_id, r.slot, COALESCE(ps.weight, 1), COALESCE(ps.used, 0),"
            " r.pool_room FROM sim_ready r JOIN devices d ON d.id = r.device_id"
            " LEFT JOIN pool_sims ps ON ps.pool_id = ? AND ps.device_id = r.device_id"
            " AND ps.slot = r.slot"
            f" WHERE {owner} AND r.ready = 1 AND d.enabled = 1 AND d.lastseen >= ?"
        )
        key = pool.account_id if pool.kind == "account" else int(pool.device_id or 0)
        params = (pool.id, key, seen_after)
    healthy: dict[Sim, PoolSim] = {}
    rooms: dict[Sim, int] = {}
    for d, s, w, u, room in conn.execute(sql, params):
        healthy[(int(d), int(s))] = PoolSim(int(d), int(s), int(w), int(u))
        rooms[(int(d), int(s))] = int(room)
    return healthy, rooms


def _may_take(
    conn: sqlite3.Connection,
    view: _PoolView,
    me: Sim,
    cand: _Candidate,
    now: int,
    rand: Callable[[], float],
) -> bool:
    pool = view.pool
    if pool.sticky:
        row = conn.execute(
            "SELECT device_id, slot FROM pool_sticky WHERE pool_id = ? AND sendto = ?",
            (pool.id, cand.sendto),
        ).fetchone()
        if row is not None:
            owner = (int(row[0]), int(row[1]))
            if owner != me and owner in view.healthy:
                return False  # it stays with the SIM that texted this recipient last
            if owner == me:
                return True  # a recipient's own SIM takes it whatever the rotation says
    if view.quota <= 0:
        # Least-loaded: a message the SIMs with more room left waiting goes to whoever asks.
        return pool.strategy == "least-loaded" and cand.due + LEAST_LOADED_PATIENCE_US < now
    if pool.strategy == "partial" and view.healthy:
        top = max(m.weight for m in view.healthy.values())
        mine = view.healthy.get(me, PoolSim(me[0], me[1]))
        return partial_takes(mine.weight, top, rand)
    return True


def _take(
    conn: sqlite3.Connection,
    me: Sim,
    chosen: list[_Candidate],
    views: dict[int, _PoolView],
    lease_id: str,
    now: int,
    expires: int,
) -> None:
    if not chosen:
        return
    marks = ",".join("?" * len(chosen))
    # Pinned rows keep their device and SIM; pool rows are bound to this SIM here.
    conn.execute(
        "UPDATE messages SET status = 2, lease_id = ?, lease_expires = ?, attempt = attempt + 1,"
        " status_changed = ?, device_id = ?, sim = ?"
        f" WHERE id IN ({marks})",
        (lease_id, expires, now, me[0], me[1], *[c.id for c in chosen]),
    )
    per_pool: dict[int, list[_Candidate]] = {}
    for c in chosen:
        if c.pool_id is not None:
            per_pool.setdefault(c.pool_id, []).append(c)
    for pool_id, taken in per_pool.items():
        view = views[pool_id]
        if view.pool.strategy == "full":
            if view.reset:
                conn.execute("UPDATE pool_sims SET used = 0 WHERE pool_id = ?", (pool_id,))
                conn.execute("UPDATE pools SET cycle = cycle + 1 WHERE id = ?", (pool_id,))
                view.reset = False
            conn.execute(
                "INSERT INTO pool_sims(pool_id, device_id, slot, used) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(pool_id, device_id, slot) DO UPDATE SET used = used + excluded.used",
                (pool_id, me[0], me[1], len(taken)),
            )
        if view.pool.sticky:
            conn.executemany(
                "INSERT INTO pool_sticky(pool_id, sendto, device_id, slot, updated)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(pool_id, sendto) DO UPDATE SET"
                " device_id = excluded.device_id, slot = excluded.slot, updated = excluded.updated",
                [(pool_id, c.sendto, me[0], me[1], now) for c in taken],
            )
