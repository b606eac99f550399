"""The agent protocol's half of the PostgreSQL store (the twin of sqlite_agent.py).

Each method is one transaction that first stamps the device's `lastseen`: that row lock orders
one device's calls across servers (a retried commit or report that reached a second server
waits for the first), while different devices run side by side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.core.models import DeviceFacts, IncomingMessage, Lease, ReportEvent, Sim
from simhive.server.core.pools import SimOffer
from simhive.server.core.status import RANK, Status
from simhive.server.store.base import AgentStore
from simhive.server.store.pg_lease import lease_sims, record_offers, requeue_expired
from simhive.server.store.pg_pools import requeue, sim_pools_sql, wake_devices
from simhive.server.store.sqlite_agent import _EVENT_STATUS
from simhive.server.store.sqlite_rows import MESSAGE_COLS, balance_json, message_row

T = TypeVar("T")
Conn = asyncpg.Connection
# `urgent` is only ever stored as 0 or 1 (see sqlite_agent.URGENT_SEEK): a MIN per value.
URGENT_VALUES = "(VALUES (1), (0)) AS u(urgent)"
_LEASED = (
    f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
    " WHERE m.id = ANY($1::bigint[]) ORDER BY m.urgent DESC, m.due, m.id"
)


def _no_nul(text: str) -> str:
    """PostgreSQL text cannot hold U+0000: a received SMS keeps the rest, with U+FFFD for it."""
    return text.replace("\x00", "\ufffd")


async def _seen(conn: Conn, device_id: int, now: int) -> None:
    await conn.execute("UPDATE devices SET lastseen = $1 WHERE id = $2", now, device_id)


class PgAgentStore(AgentStore):
    """Mixed into PgStore; needs its `_write` and `_all`."""

    if TYPE_CHECKING:

        async def _write(
            self, op: Callable[[Conn], Awaitable[T]], *, durable: bool = True
        ) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def update_device_facts(
        self, device_id: int, facts: DeviceFacts, sims: Sequence[Sim] | None, now: int
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE devices SET manufacturer = COALESCE($1, manufacturer),"
                " model = COALESCE($2, model), firmware = COALESCE($3, firmware),"
                " imei = COALESCE($4, imei), serialnumber = COALESCE($5, serialnumber),"
                " appversion = COALESCE($6, appversion), lastseen = $7 WHERE id = $8",
                facts.manufacturer, facts.model, facts.firmware, facts.imei,
                facts.serialnumber, facts.appversion, now, device_id,
            )  # fmt: skip
            if sims is not None:
                await _replace_sims(conn, device_id, sims, now)

        await self._write(op)

    async def replace_sims(self, device_id: int, sims: Sequence[Sim] | None, now: int) -> None:
        async def op(conn: Conn) -> None:
            await _seen(conn, device_id, now)
            if sims is not None:
                await _replace_sims(conn, device_id, sims, now)

        await self._write(op)

    async def due_state(self, device_id: int, now: int) -> tuple[bool, int | None]:
        rows = await self._all(
            "SELECT"
            " EXISTS(SELECT 1 FROM messages WHERE device_id = $1 AND status = 1 AND due <= $2),"
            " EXISTS(SELECT 1 FROM messages WHERE device_id = $1 AND status = 2"
            "        AND lease_expires < $2),"
            " (SELECT MIN(due) FROM messages WHERE device_id = $1 AND status = 1 AND due > $2),"
            " (SELECT MIN(lease_expires) FROM messages WHERE device_id = $1 AND status = 2)",
            device_id, now,
        )  # fmt: skip
        due, expired, next_due, next_expiry = rows[0]
        if due or expired:
            return True, None
        candidates = [int(t) for t in (next_due, next_expiry) if t is not None]
        return False, (min(candidates) if candidates else None)

    async def lease_due(
        self, device_id: int, limit: int, lease_id: str, now: int, expires: int
    ) -> Lease:
        async def op(conn: Conn) -> list[asyncpg.Record]:
            await _seen(conn, device_id, now)
            await requeue_expired(conn, "device_id = $2", now, device_id)
            rows = await conn.fetch(
                "WITH x AS (SELECT id FROM messages WHERE device_id = $1 AND status = 1"
                " AND due <= $2 ORDER BY urgent DESC, due, id LIMIT $3 FOR UPDATE SKIP LOCKED)"
                " UPDATE messages m SET status = 2, lease_id = $4, lease_expires = $5,"
                " attempt = attempt + 1, status_changed = $2 FROM x WHERE m.id = x.id"
                " RETURNING m.id",
                device_id, now, limit, lease_id, expires,
            )  # fmt: skip
            if not rows:
                return []
            return list(await conn.fetch(_LEASED, [int(r[0]) for r in rows]))

        rows = await self._write(op, durable=False)
        return Lease(lease_id, expires, [message_row(r) for r in rows])

    async def offer_sims(self, device_id: int, offers: Sequence[SimOffer], now: int) -> None:
        async def op(conn: Conn) -> None:
            await _seen(conn, device_id, now)
            await record_offers(conn, device_id, offers, now)

        await self._write(op, durable=False)

    async def sim_readiness(self, device_id: int, slot: int) -> tuple[bool, str] | None:
        rows = await self._all(
            "SELECT ready, reason FROM sim_ready WHERE device_id = $1 AND slot = $2",
            device_id, slot,
        )  # fmt: skip
        return (bool(rows[0][0]), str(rows[0][1])) if rows else None

    async def due_state_sims(
        self, device_id: int, account_id: int, offers: Sequence[SimOffer], now: int
    ) -> tuple[bool, int | None]:
        pinned = sorted({o.slot for o in offers if o.ready and o.room > 0})
        pooled = sorted({o.slot for o in offers if o.ready and o.room > 0 and o.pool_room > 0})
        if not pinned:
            return False, None
        no_pools = "SELECT NULL::bigint AS id WHERE false"
        pools = sim_pools_sql("$3", "$1", "$2") if pooled else no_pools
        # Three MINs, each an index seek or a few: the earliest waiting message pinned to the
        # SIMs, the earliest in their pools, the device's earliest lease expiry. Something is
        # due if one of them is past, else the earliest is when to look again. PostgreSQL 15
        # has no skip scan, and a list (`= ANY`, IN) on an index column after the first makes
        # the scan's output unordered, so a MIN over `sim = ANY(...)` or `urgent IN (1, 0)`
        # (the queue indexes hold the SIM or pool, then `urgent`, before `due`) read every
        # waiting message: 1,751 buffers and 61 - 166 ms a check with 100,000 scheduled pool
        # messages (docs/benchmarks.md). So it is one MIN per SIM (or pool) and `urgent` value,
        # each the first entry of its index range. With no bound on `due` (the earlier form had
        # EXISTS(due <= now) and MIN(due > now)) one seek answers both questions, and no EXISTS
        # is left for the planner to cost as a sequential scan (with statistics it took one
        # when the device's own scheduled messages were many). The SIMs are a VALUES list of
        # parameters, not unnest($n): the generic plan, which a prepared statement switches to
        # after five runs, then knows their number; with unnest it guessed 10, stayed dearer
        # than the custom plans, and every check was planned anew (about 3 times the time).
        # The expiry reads messages_device_leases: the device's own leased messages only.
        slots = ", ".join(f"(${n}::int)" for n in range(4, 4 + len(pinned)))
        rows = await self._all(
            "SELECT"
            f" (SELECT MIN(n.due) FROM (VALUES {slots}) AS s(slot) CROSS JOIN"
            f" {URGENT_VALUES} CROSS JOIN LATERAL (SELECT MIN(due) AS due FROM messages"
            "        WHERE device_id = $1 AND sim = s.slot AND status = 1"
            "        AND urgent = u.urgent) n),"
            f" (SELECT MIN(n.due) FROM ({pools}) AS q CROSS JOIN {URGENT_VALUES}"
            " CROSS JOIN LATERAL (SELECT MIN(due) AS due FROM messages WHERE pool_id = q.id"
            "        AND status = 1 AND device_id IS NULL AND urgent = u.urgent) n),"
            " (SELECT MIN(lease_expires) FROM messages WHERE device_id = $1 AND status = 2)"
            # $2 and $3 are named in every statement so their types are known either way.
            " FROM (SELECT $2::int[] AS s, $3::bigint AS a) params",
            device_id, pooled, account_id, *pinned,
        )  # fmt: skip
        first_pinned, first_pooled, first_expiry = rows[0]
        firsts = [int(t) for t in (first_pinned, first_pooled) if t is not None]
        if any(t <= now for t in firsts) or (first_expiry is not None and first_expiry < now):
            return True, None
        if first_expiry is not None:
            firsts.append(int(first_expiry))
        return False, (min(firsts) if firsts else None)

    async def lease_sims(
        self,
        device_id: int,
        offers: Sequence[SimOffer],
        limit: int,
        lease_id: str,
        now: int,
        expires: int,
        seen_after: int,
        rand: Callable[[], float],
    ) -> tuple[Lease, set[int]]:
        async def op(conn: Conn) -> tuple[list[asyncpg.Record], set[int]]:
            ids, waiting_pools = await lease_sims(
                conn, device_id, offers, limit, lease_id, now, expires, seen_after, rand
            )
            wake = await wake_devices(conn, sorted(waiting_pools)) - {device_id}
            if not ids:
                return [], wake
            return list(await conn.fetch(_LEASED, ids)), wake

        rows, wake = await self._write(op, durable=False)
        return Lease(lease_id, expires, [message_row(r) for r in rows]), wake

    async def release_messages(
        self, device_id: int, ids: Sequence[int], now: int
    ) -> tuple[list[int], list[int], set[int]]:
        async def op(conn: Conn) -> tuple[list[int], list[int], set[int]]:
            await _seen(conn, device_id, now)
            released: list[int] = []
            kept: list[int] = []
            pools: set[int] = set()
            for sms_id in dict.fromkeys(ids):
                row = await conn.fetchrow(
                    "SELECT pool_id, status FROM messages"
                    " WHERE id = $1 AND device_id = $2 AND direction = 'out' FOR UPDATE",
                    sms_id, device_id,
                )  # fmt: skip
                taken = row is not None and row[1] in (Status.TAKEN, Status.QUEUED)
                if row is not None and row[0] is None and taken:
                    kept.append(sms_id)
                    continue
                if row is not None and taken:
                    await conn.execute(
                        f"UPDATE messages SET {requeue('$1')} WHERE id = $2", now, sms_id
                    )
                    pools.add(int(row[0]))
                released.append(sms_id)
            return released, kept, await wake_devices(conn, sorted(pools))

        return await self._write(op)

    async def release_leases(
        self,
        device_id: int,
        now: int,
        *,
        lease_ids: Sequence[str] | None = None,
        keep: Sequence[str] = (),
    ) -> int:
        if lease_ids is not None and not lease_ids:
            return 0
        sql = f"UPDATE messages SET {requeue('$1')} WHERE device_id = $2 AND status = 2"
        args: list[Any] = [now, device_id]
        if lease_ids is not None:
            sql += " AND lease_id = ANY($3::text[])"
            args.append(list(lease_ids))
        elif keep:
            sql += " AND NOT (lease_id = ANY($3::text[]))"
            args.append(list(keep))

        async def op(conn: Conn) -> int:
            return int((await conn.execute(sql, *args)).split()[-1])

        return await self._write(op)

    async def commit_lease(
        self, device_id: int, lease_id: str, ids: Sequence[int], now: int
    ) -> tuple[list[int], list[int]]:
        wanted = list(dict.fromkeys(ids))

        async def op(conn: Conn) -> tuple[list[int], list[int]]:
            await _seen(conn, device_id, now)
            # One conditional UPDATE: a row the sweeper re-queued meanwhile no longer matches.
            done = {
                int(r[0])
                for r in await conn.fetch(
                    "UPDATE messages SET status = 3, status_changed = $1 WHERE id = ANY($2)"
                    " AND device_id = $3 AND direction = 'out' AND lease_id = $4 AND status = 2"
                    " RETURNING id",
                    now,
                    wanted,
                    device_id,
                    lease_id,
                )  # fmt: skip
            }
            rest = {
                int(r[0]): (int(r[1]), r[2])
                for r in await conn.fetch(
                    "SELECT id, status, lease_id FROM messages WHERE id = ANY($1::bigint[])"
                    " AND device_id = $2 AND direction = 'out'",
                    [i for i in wanted if i not in done],
                    device_id,
                )  # fmt: skip
            }
            committed: list[int] = []
            rejected: list[int] = []
            for sms_id in wanted:
                if sms_id in done:
                    committed.append(sms_id)
                    continue
                status, lease = rest.get(sms_id, (0, None))
                if lease == lease_id and RANK.get(status, 0) >= RANK[Status.QUEUED]:
                    committed.append(sms_id)  # committed before: the same answer again
                else:
                    rejected.append(sms_id)
            return committed, rejected

        return await self._write(op)

    async def apply_events(
        self, device_id: int, events: Sequence[ReportEvent], now: int
    ) -> list[str]:
        async def op(conn: Conn) -> list[str]:
            await _seen(conn, device_id, now)
            accepted: list[str] = []
            for ev in events:
                done = await conn.fetchval(
                    "SELECT 1 FROM applied_events WHERE device_id = $1 AND event_id = $2",
                    device_id, ev.event_id,
                )  # fmt: skip
                if done:
                    accepted.append(ev.event_id)
                    continue
                status = await conn.fetchval(
                    "SELECT status FROM messages"
                    " WHERE id = $1 AND device_id = $2 AND direction = 'out' FOR UPDATE",
                    ev.sms_id, device_id,
                )  # fmt: skip
                if status is None:
                    continue
                await _apply_event(conn, ev, int(status), now)
                await conn.execute(
                    "INSERT INTO applied_events(device_id, event_id, sms_id, applied_at)"
                    " VALUES ($1, $2, $3, $4)",
                    device_id, ev.event_id, ev.sms_id, now,
                )  # fmt: skip
                accepted.append(ev.event_id)
            return accepted

        return await self._write(op)

    async def store_incoming(
        self, account_id: int, device_id: int, messages: Sequence[IncomingMessage], now: int
    ) -> list[tuple[str, int]]:
        async def op(conn: Conn) -> list[tuple[str, int]]:
            await _seen(conn, device_id, now)
            out: list[tuple[str, int]] = []
            for m in messages:
                known = await conn.fetchval(
                    "SELECT sms_id FROM incoming_keys WHERE device_id = $1 AND key = $2",
                    device_id, m.key,
                )  # fmt: skip
                if known is not None:
                    out.append((m.key, int(known)))
                    continue
                created = m.received_at if m.received_at is not None else now
                sms_id = int(
                    await conn.fetchval(
                        "INSERT INTO messages(account_id, device_id, direction, sendto, body,"
                        " sim, status, urgent, created, due, status_changed, sent_at,"
                        " parts_count, failure_reason) VALUES ($1, $2, 'in', $3, $4, $5, 5, 0,"
                        " $6, $7, $7, $8, $9, $10) RETURNING id",
                        account_id,
                        device_id,
                        _no_nul(m.sender),
                        _no_nul(m.body),
                        m.sim,
                        created,
                        now,
                        m.sent_at,
                        m.parts,
                        "incomplete" if m.incomplete else None,
                    )  # fmt: skip
                )
                await conn.execute(
                    "INSERT INTO incoming_keys(device_id, key, sms_id, created)"
                    " VALUES ($1, $2, $3, $4)",
                    device_id, m.key, sms_id, now,
                )  # fmt: skip
                out.append((m.key, sms_id))
            return out

        return await self._write(op)

    async def expire_leases(self, now: int) -> set[int]:
        async def op(conn: Conn) -> set[int]:
            expired = await requeue_expired(conn, "true", now)
            pools = sorted({int(r[1]) for r in expired if r[1] is not None})
            pinned = {int(r[0]) for r in expired if r[1] is None}
            return pinned | await wake_devices(conn, pools)

        return await self._write(op)


async def _apply_event(conn: Conn, ev: ReportEvent, current: int, now: int) -> None:
    if ev.parts:
        await conn.executemany(
            "INSERT INTO message_parts(sms_id, part_index, reference) VALUES ($1, $2, $3)"
            " ON CONFLICT(sms_id, part_index) DO UPDATE SET reference = excluded.reference",
            [(ev.sms_id, index, ref) for index, ref in ev.parts],
        )
    target = ev.status if ev.type == "failed" and ev.status is not None else _EVENT_STATUS[ev.type]
    if RANK.get(target, 0) <= RANK.get(current, 0):
        if ev.type == "sent":
            await conn.execute(
                "UPDATE messages SET senttime = COALESCE(senttime, $1) WHERE id = $2",
                ev.at, ev.sms_id,
            )  # fmt: skip
        return
    sets = ["status = $1", "status_changed = $2"]
    args: list[Any] = [target, now]
    if ev.type == "sent":
        args.append(ev.at)
        sets.append(f"senttime = COALESCE(senttime, ${len(args)})")
    elif ev.type == "delivered":
        args.append(ev.at)
        sets.append(f"delivered_time = ${len(args)}")
    if ev.type in ("failed", "unknown", "not_delivered"):
        args += [ev.code or ev.type, ev.reason]
        sets += [f"failure_code = ${len(args) - 1}", f"failure_reason = ${len(args)}"]
    args.append(ev.sms_id)
    await conn.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id = ${len(args)}", *args)


async def _replace_sims(conn: Conn, device_id: int, sims: Sequence[Sim], now: int) -> None:
    await conn.execute("DELETE FROM sims WHERE device_id = $1", device_id)
    if sims:
        await conn.executemany(
            "INSERT INTO sims(device_id, slot, present, active, iccid, imsi, number, operator,"
            " operator_code, carrier, country_iso, registered, roaming, signal_dbm, updated,"
            " balance) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
            " $15, $16)",
            [
                (device_id, s.slot, int(s.present), int(s.active), s.iccid, s.imsi, s.number,
                 s.operator, s.operator_code, s.carrier, s.country_iso.lower(),
                 int(s.registered), int(s.roaming), s.signal_dbm, now, balance_json(s.balance))
                for s in sims
            ],
        )  # fmt: skip
    first = next((s.number for s in sorted(sims, key=lambda s: s.slot) if s.number), None)
    await conn.execute("UPDATE devices SET number = $1 WHERE id = $2", first, device_id)
