"""The agent protocol's half of the SQLite store: leases, commits, outcome reports, incoming SMS.

Every method is one write op in the group-commit writer, so each agent call is one transaction,
and it also stamps the device's `lastseen` in that transaction: through SeenStamps, which writes
the stamps of all the ops of a group transaction with one statement just before its COMMIT.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from simhive.server.core.models import DeviceFacts, IncomingMessage, Lease, ReportEvent, Sim
from simhive.server.core.pools import SimOffer
from simhive.server.core.status import RANK, Status
from simhive.server.store.sqlite_lease import lease_sims, record_offers
from simhive.server.store.sqlite_pools import REQUEUE_SET, SIM_POOLS_SQL, wake_devices
from simhive.server.store.sqlite_rows import MESSAGE_COLS, balance_json, message_row

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

# Event type -> the status it sets; `failed` carries its own.
_EVENT_STATUS = {
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "not_delivered": Status.NOT_DELIVERED,
    "unknown": Status.FAILED,
}


# Devices per stamping statement: at most this many statement texts in the writer's cache.
_STAMPS_PER_STATEMENT = 32
# Both queue indexes (messages_pull, messages_pool_queue) put `urgent` before `due`. Without a
# value for `urgent`, a "due <= now" or "MIN(due) > now" read cannot seek on `due` and walks every
# waiting message of the device's SIMs or the pool: 170 ms a pull check with 100,000 scheduled
# pool messages, against 0.13 ms with it. `urgent` is only ever stored as 0 or 1 (the inserts
# write `1 if urgent else 0`), so naming both values selects the same rows and lets SQLite seek
# once per value.
URGENT_SEEK = "urgent IN (1, 0)"


class SeenStamps:
    """The `lastseen` stamps of a group transaction's agent ops, written together before COMMIT.

    Every agent call stamps its device, and one UPDATE per call was about an eighth of the
    writer's statements per SMS at 64 modems (each a GIL hand-over with the busy event loop).
    An op records its stamp here instead (the latest `now` of a device wins, as the last UPDATE
    did); the writer calls `flush` after the batch's last op, in the same transaction, so a
    committed call has stamped its device, exactly as before. The stamp of an op that failed is
    written too: its agent was seen. Used on the writer thread only.
    """

    def __init__(self) -> None:
        self._pending: dict[int, int] = {}

    def stamp(self, device_id: int, now: int) -> None:
        self._pending[device_id] = now

    def flush(self, conn: sqlite3.Connection) -> None:
        if not self._pending:
            return
        stamps = list(self._pending.items())
        self._pending.clear()
        for start in range(0, len(stamps), _STAMPS_PER_STATEMENT):
            chunk = stamps[start : start + _STAMPS_PER_STATEMENT]
            conn.execute(
                "UPDATE devices SET lastseen = CASE id" + " WHEN ? THEN ?" * len(chunk)
                + f" END WHERE id IN ({','.join('?' * len(chunk))})",
                [v for pair in chunk for v in pair] + [device_id for device_id, _ in chunk],
            )  # fmt: skip


class SqliteAgentStore:
    """Mixed into SqliteStore; needs its `writer`, `_all`, `_quick` and `seen`."""

    writer: GroupCommitWriter
    seen: SeenStamps

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore

    async def _quick(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore: on the event loop's thread

    async def update_device_facts(
        self, device_id: int, facts: DeviceFacts, sims: Sequence[Sim] | None, now: int
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE devices SET manufacturer = COALESCE(?, manufacturer),"
                " model = COALESCE(?, model), firmware = COALESCE(?, firmware),"
                " imei = COALESCE(?, imei), serialnumber = COALESCE(?, serialnumber),"
                " appversion = COALESCE(?, appversion), lastseen = ? WHERE id = ?",
                (facts.manufacturer, facts.model, facts.firmware, facts.imei,
                 facts.serialnumber, facts.appversion, now, device_id),
            )  # fmt: skip
            if sims is not None:
                _replace_sims(conn, device_id, sims, now)

        await self.writer.submit(op)

    async def replace_sims(self, device_id: int, sims: Sequence[Sim] | None, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            if sims is not None:
                _replace_sims(conn, device_id, sims, now)
            self.seen.stamp(device_id, now)

        await self.writer.submit(op)

    async def due_state(self, device_id: int, now: int) -> tuple[bool, int | None]:
        rows = await self._quick(
            "SELECT"
            " EXISTS(SELECT 1 FROM messages WHERE device_id = ? AND status = 1 AND due <= ?),"
            " EXISTS(SELECT 1 FROM messages WHERE device_id = ? AND status = 2"
            "        AND lease_expires < ?),"
            " (SELECT MIN(due) FROM messages WHERE device_id = ? AND status = 1 AND due > ?),"
            " (SELECT MIN(lease_expires) FROM messages WHERE device_id = ? AND status = 2)",
            (device_id, now, device_id, now, device_id, now, device_id),
        )
        due, expired, next_due, next_expiry = rows[0]
        if due or expired:
            return True, None
        candidates = [t for t in (next_due, next_expiry) if t is not None]
        return False, (min(candidates) if candidates else None)

    async def lease_due(
        self, device_id: int, limit: int, lease_id: str, now: int, expires: int
    ) -> Lease:
        def op(conn: sqlite3.Connection) -> list[Any]:
            # A lease that expired uncommitted goes back to the queue before anything is handed out.
            conn.execute(
                f"UPDATE messages SET {REQUEUE_SET} WHERE device_id = ? AND status = 2"
                " AND lease_expires < ?",
                (now, device_id, now),
            )
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM messages WHERE device_id = ? AND status = 1 AND due <= ?"
                    " ORDER BY urgent DESC, due, id LIMIT ?",
                    (device_id, now, limit),
                )
            ]
            self.seen.stamp(device_id, now)
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            conn.execute(
                "UPDATE messages SET status = 2, lease_id = ?, lease_expires = ?,"
                f" attempt = attempt + 1, status_changed = ? WHERE id IN ({marks})",
                (lease_id, expires, now, *ids),
            )
            return conn.execute(
                f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
                f" WHERE m.id IN ({marks}) ORDER BY m.urgent DESC, m.due, m.id",
                ids,
            ).fetchall()

        rows = await self.writer.submit(op)
        return Lease(lease_id, expires, [message_row(r) for r in rows])

    async def offer_sims(self, device_id: int, offers: Sequence[SimOffer], now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            record_offers(conn, device_id, offers, now)
            self.seen.stamp(device_id, now)

        await self.writer.submit(op)

    async def sim_readiness(self, device_id: int, slot: int) -> tuple[bool, str] | None:
        rows = await self._all(
            "SELECT ready, reason FROM sim_ready WHERE device_id = ? AND slot = ?",
            (device_id, slot),
        )
        return (bool(rows[0][0]), str(rows[0][1])) if rows else None

    async def due_state_sims(
        self, device_id: int, account_id: int, offers: Sequence[SimOffer], now: int
    ) -> tuple[bool, int | None]:
        pinned = sorted({o.slot for o in offers if o.ready and o.room > 0})
        pooled = sorted({o.slot for o in offers if o.ready and o.room > 0 and o.pool_room > 0})
        if not pinned:
            return False, None
        slots = ",".join("?" * len(pinned))
        pool_params = [v for slot in pooled for v in (account_id, device_id, device_id, slot)]
        # Without a SIM that may take pool messages the pool queue is not looked at: SQLite would
        # otherwise still walk it (`pool_id IN (nothing)` does not stop the scan). With one, the
        # queue is read through its own partial index: the planner, without statistics, takes
        # `device_id IS NULL` for an equality on messages_pull and walks every waiting pool
        # message, each with a table lookup (0.6 - 0.9 ms with 1,900 waiting).
        pool_query = (
            "SELECT {} FROM messages INDEXED BY messages_pool_queue WHERE pool_id IN ("
            + " UNION ".join([SIM_POOLS_SQL] * len(pooled))
            + f") AND status = 1 AND device_id IS NULL AND {URGENT_SEEK} AND due {{}} ?"
        )
        if pooled:
            pool_due_sql = f"EXISTS({pool_query.format('1', '<=')})"
            next_pool_sql = f"({pool_query.format('MIN(due)', '>')})"
            pool_due_params: list[int] = [*pool_params, now]
        else:
            pool_due_sql, next_pool_sql, pool_due_params = "0", "NULL", []
        # The next due times matter only when nothing is due now, and finding them is the costly
        # part while a pool's queue is long and due (MIN(due) over `due > now` walks past every
        # waiting message: 0.2 ms per pull with 1,900 waiting); so they are computed only then.
        rows = await self._quick(
            "WITH now_due(d, p, e) AS MATERIALIZED (SELECT"
            f" EXISTS(SELECT 1 FROM messages WHERE device_id = ? AND sim IN ({slots})"
            f"        AND status = 1 AND {URGENT_SEEK} AND due <= ?),"
            f" {pool_due_sql},"
            " EXISTS(SELECT 1 FROM messages WHERE device_id = ? AND status = 2"
            "        AND lease_expires < ?))"
            " SELECT d, p, e,"
            " CASE WHEN d OR p OR e THEN NULL ELSE"
            f" (SELECT MIN(due) FROM messages WHERE device_id = ? AND sim IN ({slots})"
            f"        AND status = 1 AND {URGENT_SEEK} AND due > ?) END,"
            f" CASE WHEN d OR p OR e THEN NULL ELSE {next_pool_sql} END,"
            " CASE WHEN d OR p OR e THEN NULL ELSE"
            " (SELECT MIN(lease_expires) FROM messages WHERE device_id = ? AND status = 2) END"
            " FROM now_due",
            (device_id, *pinned, now, *pool_due_params, device_id, now,
             device_id, *pinned, now, *pool_due_params, device_id),
        )  # fmt: skip
        due, pool_due, expired, next_due, next_pool, next_expiry = rows[0]
        if due or pool_due or expired:
            return True, None
        candidates = [t for t in (next_due, next_pool, next_expiry) if t is not None]
        return False, (min(candidates) if candidates else None)

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
        def op(conn: sqlite3.Connection) -> tuple[list[Any], set[int]]:
            ids, waiting_pools = lease_sims(
                conn, device_id, offers, limit, lease_id, now, expires, seen_after, rand
            )
            # The lease stamped lastseen itself, before reading it; a flush of an older stamp
            # of this device from earlier in the batch must not undo that.
            self.seen.stamp(device_id, now)
            wake = wake_devices(conn, sorted(waiting_pools)) - {device_id}
            if not ids:
                return [], wake
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
                f" WHERE m.id IN ({marks}) ORDER BY m.urgent DESC, m.due, m.id",
                ids,
            ).fetchall()
            return rows, wake

        rows, wake = await self.writer.submit(op)
        return Lease(lease_id, expires, [message_row(r) for r in rows]), wake

    async def release_messages(
        self, device_id: int, ids: Sequence[int], now: int
    ) -> tuple[list[int], list[int], set[int]]:
        def op(conn: sqlite3.Connection) -> tuple[list[int], list[int], set[int]]:
            released: list[int] = []
            kept: list[int] = []
            pools: set[int] = set()
            for sms_id in dict.fromkeys(ids):
                row = conn.execute(
                    "SELECT pool_id, status FROM messages"
                    " WHERE id = ? AND device_id = ? AND direction = 'out'",
                    (sms_id, device_id),
                ).fetchone()
                if row is not None and row[0] is None and row[1] in (Status.TAKEN, Status.QUEUED):
                    kept.append(sms_id)  # pinned: it waits for its own SIM on this device
                    continue
                if row is not None and row[1] in (Status.TAKEN, Status.QUEUED):
                    conn.execute(f"UPDATE messages SET {REQUEUE_SET} WHERE id = ?", (now, sms_id))
                    pools.add(int(row[0]))
                released.append(sms_id)  # not this device's to send (any more)
            self.seen.stamp(device_id, now)
            return released, kept, wake_devices(conn, sorted(pools))

        return await self.writer.submit(op)

    async def release_leases(
        self,
        device_id: int,
        now: int,
        *,
        lease_ids: Sequence[str] | None = None,
        keep: Sequence[str] = (),
    ) -> int:
        def op(conn: sqlite3.Connection) -> int:
            sql = f"UPDATE messages SET {REQUEUE_SET} WHERE device_id = ? AND status = 2"
            params: list[Any] = [now, device_id]
            if lease_ids is not None:
                if not lease_ids:
                    return 0
                sql += f" AND lease_id IN ({','.join('?' * len(lease_ids))})"
                params += lease_ids
            elif keep:
                sql += f" AND lease_id NOT IN ({','.join('?' * len(keep))})"
                params += keep
            return int(conn.execute(sql, params).rowcount)

        # One UPDATE: a failure is undone by SQLite alone, no savepoint needed (every pull runs it).
        return await self.writer.submit(op, atomic=True)

    async def commit_lease(
        self, device_id: int, lease_id: str, ids: Sequence[int], now: int
    ) -> tuple[list[int], list[int]]:
        wanted = list(dict.fromkeys(ids))
        marks = ",".join("?" * len(wanted))

        def op(conn: sqlite3.Connection) -> tuple[list[int], list[int]]:
            self.seen.stamp(device_id, now)
            if not wanted:
                return [], []
            # One conditional UPDATE for the whole commit, as on PostgreSQL: a row the sweeper
            # re-queued meanwhile, or another lease's, no longer matches. Two statements per
            # commit instead of two per message (each one a GIL hand-over of the writer thread).
            done = {
                int(r[0])
                for r in conn.execute(
                    f"UPDATE messages SET status = 3, status_changed = ? WHERE id IN ({marks})"
                    " AND device_id = ? AND direction = 'out' AND lease_id = ? AND status = 2"
                    " RETURNING id",
                    (now, *wanted, device_id, lease_id),
                ).fetchall()
            }
            rest = [i for i in wanted if i not in done]
            known: dict[int, tuple[int, str | None]] = {}
            if rest:
                known = {
                    int(r[0]): (int(r[1]), r[2])
                    for r in conn.execute(
                        "SELECT id, status, lease_id FROM messages"
                        f" WHERE id IN ({','.join('?' * len(rest))}) AND device_id = ?"
                        " AND direction = 'out'",
                        (*rest, device_id),
                    )
                }
            committed: list[int] = []
            rejected: list[int] = []
            for sms_id in wanted:
                if sms_id in done:
                    committed.append(sms_id)
                    continue
                status, lease = known.get(sms_id, (0, None))
                if lease == lease_id and RANK.get(status, 0) >= RANK[Status.QUEUED]:
                    committed.append(sms_id)  # committed before: the same answer again
                else:
                    rejected.append(sms_id)  # expired and re-queued, or not this lease's
            return committed, rejected

        # Its one write is the UPDATE ... RETURNING (the SELECT after it only reads, the stamp is
        # the writer's), so it runs without a savepoint: two statements fewer per commit.
        return await self.writer.submit(op, atomic=True)

    async def apply_events(
        self, device_id: int, events: Sequence[ReportEvent], now: int
    ) -> list[str]:
        def op(conn: sqlite3.Connection) -> list[str]:
            self.seen.stamp(device_id, now)
            if not events:
                return []
            # What the events need to know is read once per report, not twice per event: the
            # events this device already had applied, and the status of each message it names
            # (kept up to date below as the events of this report move it on).
            names = list(dict.fromkeys(ev.event_id for ev in events))
            done = {
                str(r[0])
                for r in conn.execute(
                    "SELECT event_id FROM applied_events WHERE device_id = ?"
                    f" AND event_id IN ({','.join('?' * len(names))})",
                    (device_id, *names),
                )
            }
            sms_ids = list(dict.fromkeys(ev.sms_id for ev in events))
            status = {
                int(r[0]): int(r[1])
                for r in conn.execute(
                    f"SELECT id, status FROM messages WHERE id IN ({','.join('?' * len(sms_ids))})"
                    " AND device_id = ? AND direction = 'out'",
                    (*sms_ids, device_id),
                )
            }
            accepted: list[str] = []
            applied: list[tuple[int, str, int, int]] = []
            for ev in events:
                if ev.event_id in done:
                    accepted.append(ev.event_id)
                    continue
                current = status.get(ev.sms_id)
                if current is None:
                    continue  # not this device's message: never applied, never accepted
                status[ev.sms_id] = _apply_event(conn, ev, current, now)
                done.add(ev.event_id)  # the same event twice in one report: applied once
                applied.append((device_id, ev.event_id, ev.sms_id, now))
                accepted.append(ev.event_id)
            conn.executemany(
                "INSERT INTO applied_events(device_id, event_id, sms_id, applied_at)"
                " VALUES (?, ?, ?, ?)",
                applied,
            )
            return accepted

        return await self.writer.submit(op)

    async def store_incoming(
        self, account_id: int, device_id: int, messages: Sequence[IncomingMessage], now: int
    ) -> list[tuple[str, int]]:
        def op(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            out: list[tuple[str, int]] = []
            for m in messages:
                row = conn.execute(
                    "SELECT sms_id FROM incoming_keys WHERE device_id = ? AND key = ?",
                    (device_id, m.key),
                ).fetchone()
                if row:
                    out.append((m.key, int(row[0])))
                    continue
                created = m.received_at if m.received_at is not None else now
                cur = conn.execute(
                    "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim,"
                    " status, urgent, created, due, status_changed, sent_at, parts_count,"
                    " failure_reason) VALUES (?, ?, 'in', ?, ?, ?, 5, 0, ?, ?, ?, ?, ?, ?)",
                    (account_id, device_id, m.sender, m.body, m.sim, created, now, now,
                     m.sent_at, m.parts, "incomplete" if m.incomplete else None),
                )  # fmt: skip
                sms_id = int(cur.lastrowid or 0)
                conn.execute(
                    "INSERT INTO incoming_keys(device_id, key, sms_id, created)"
                    " VALUES (?, ?, ?, ?)",
                    (device_id, m.key, sms_id, now),
                )
                out.append((m.key, sms_id))
            self.seen.stamp(device_id, now)
            return out

        return await self.writer.submit(op)


def _apply_event(conn: sqlite3.Connection, ev: ReportEvent, current: int, now: int) -> int:
    """Apply one event to its message, whose status is `current`; returns its status after."""
    for index, reference in ev.parts:
        conn.execute(
            "INSERT INTO message_parts(sms_id, part_index, reference) VALUES (?, ?, ?)"
            " ON CONFLICT(sms_id, part_index) DO UPDATE SET reference = excluded.reference",
            (ev.sms_id, index, reference),
        )
    target = ev.status if ev.type == "failed" and ev.status is not None else _EVENT_STATUS[ev.type]
    # A status never moves backwards: a late `sent` after `delivered` changes nothing.
    if RANK.get(target, 0) <= RANK.get(current, 0):
        if ev.type == "sent":
            conn.execute(
                "UPDATE messages SET senttime = COALESCE(senttime, ?) WHERE id = ?",
                (ev.at, ev.sms_id),
            )
        return current
    sets = ["status = ?", "status_changed = ?"]
    params: list[Any] = [target, now]
    if ev.type == "sent":
        sets.append("senttime = COALESCE(senttime, ?)")
        params.append(ev.at)
    elif ev.type == "delivered":
        sets.append("delivered_time = ?")
        params.append(ev.at)
    if ev.type in ("failed", "unknown", "not_delivered"):
        sets += ["failure_code = ?", "failure_reason = ?"]
        params += [ev.code or ev.type, ev.reason]
    conn.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id = ?", (*params, ev.sms_id))
    return target


def _replace_sims(conn: sqlite3.Connection, device_id: int, sims: Sequence[Sim], now: int) -> None:
    conn.execute("DELETE FROM sims WHERE device_id = ?", (device_id,))
    conn.executemany(
        "INSERT INTO sims(device_id, slot, present, active, iccid, imsi, number, operator,"
        " operator_code, carrier, country_iso, registered, roaming, signal_dbm, updated,"
        " balance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (device_id, s.slot, int(s.present), int(s.active), s.iccid, s.imsi, s.number,
             s.operator, s.operator_code, s.carrier, s.country_iso.lower(), int(s.registered),
             int(s.roaming), s.signal_dbm, now, balance_json(s.balance))
            for s in sims
        ],
    )  # fmt: skip
    first = next((s.number for s in sorted(sims, key=lambda s: s.slot) if s.number), None)
    conn.execute("UPDATE devices SET number = ? WHERE id = ?", (first, device_id))
