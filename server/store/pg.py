"""The PostgreSQL store: several servers share one database (docs/scaling.md).

Same interface and contract as the SQLite store (tests/store runs one suite against both). Each
write is one transaction on a pooled asyncpg connection; PostgreSQL's own WAL flush makes it
durable before it is acknowledged (synchronous_commit stays on) and serves concurrent commits
with one flush, so there is no writer thread. What several servers need beyond one box:

- leases take rows with `FOR UPDATE SKIP LOCKED` (pg_lease.py), so two servers never lease one
  message, and an agent's calls serialize on its device row (every call stamps `lastseen` first);
- wake-ups for long polls and the webhook sender travel as NOTIFY (pg_cluster.py);
- the lease sweeper and the webhook sender run on one server at a time (session advisory locks).

`schema` puts the tables in a schema of their own (the tests give each test one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import asyncpg

from simhive.server.core.errors import InvalidInput
from simhive.server.core.models import (
    Account,
    Device,
    Message,
    MessageFilter,
    NewMessage,
    NewPaket,
    PaketResult,
    Sim,
)
from simhive.server.core.native_models import Meter
from simhive.server.core.notifier import WorkNotifier
from simhive.server.store.base import AfterInsert, DuplicateEmail, Store, StoreError
from simhive.server.store.pg_account_webhooks import PgAccountWebhookStore
from simhive.server.store.pg_agent import PgAgentStore
from simhive.server.store.pg_campaigns import PgCampaignStore
from simhive.server.store.pg_cluster import Cluster
from simhive.server.store.pg_delete import PgDeleteStore
from simhive.server.store.pg_devices import PgDeviceAdminStore
from simhive.server.store.pg_groups import PgGroupStore
from simhive.server.store.pg_logins import PgLoginStore
from simhive.server.store.pg_native import PgNativeStore, count_each
from simhive.server.store.pg_otp import PgOtpStore
from simhive.server.store.pg_pools import PgPoolStore
from simhive.server.store.pg_schema import migrate
from simhive.server.store.pg_templates import PgTemplateStore
from simhive.server.store.pg_webhooks import PgIdempotencyStore, PgWebhookStore
from simhive.server.store.sqlite_rows import (
    ACCOUNT_COLS,
    DEVICE_COLS,
    MESSAGE_COLS,
    SIM_COLS,
    account_row,
    device_row,
    message_row,
    sim_row,
)

T = TypeVar("T")
# Connections per server process. Every request holds one only for its statement or transaction;
# a long poll holds none while it waits. Several servers share the database's max_connections
# (100 by default), so keep N servers x POOL_SIZE + the listeners well below it.
POOL_SIZE = 10
# A transaction that lost a deadlock or a serialization conflict is run again, this many times.
RETRIES = 5
# The per-statement counter rows of an account (pg_schema migration 6) are folded back into one
# when a count finds more than this many.
COUNT_ROWS_FOLD = 64
# PostgreSQL text cannot hold U+0000 (SQLite's can): such input is refused in the API's error
# shape (an incoming SMS has it replaced instead, pg_agent.py, so an agent is never stuck).
NUL_REFUSED = "Text must not contain NUL characters (U+0000)"
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
# The Postgres connection failed or went away: not the client's fault, the caller may retry.
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.InsufficientResourcesError,
    asyncpg.AdminShutdownError,
)

Conn = asyncpg.Connection
Write = Callable[[Conn], Awaitable[T]]

_MESSAGE_INSERT = (
    "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status, urgent,"
    " customerid, created, timetosend, due, status_changed, pool_id)"
)
_INSERT_MANY = _MESSAGE_INSERT + (
    " SELECT a, d, 'out', s, b, sim, 1, u, c, w, t, COALESCE(t, w), w, p"
    " FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::int[],"
    " $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[]) WITH ORDINALITY"
    " AS r(a, d, s, b, sim, u, c, w, t, p, n) ORDER BY n RETURNING id"
)
# Single-message inserts (one addsms each) waiting while the previous group is committed go in
# together: one statement, one transaction, one WAL flush for all of them, as SQLite's writer
# does. At most this many per group.
MAX_GROUP = 512
Queued = tuple[NewMessage, int, Sequence[Meter], "asyncio.Future[int]"]


class PgStore(
    PgAgentStore,
    PgPoolStore,
    PgWebhookStore,
    PgIdempotencyStore,
    PgLoginStore,
    PgDeleteStore,
    PgNativeStore,
    PgTemplateStore,
    PgGroupStore,
    PgCampaignStore,
    PgDeviceAdminStore,
    PgOtpStore,
    PgAccountWebhookStore,
    Store,
):
    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.schema = schema
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self.cluster: Cluster | None = None
        self._queued: list[Queued] = []
        self._grouping: asyncio.Task[None] | None = None
        self.groups = 0  # group inserts committed (tests, benchmarks)

    # -- life cycle ------------------------------------------------------------------------
    def _settings(self) -> dict[str, str]:
        settings = {"application_name": "simhive-server"}
        if self.schema is not None:
            settings["search_path"] = self.schema
        return settings

    async def connect(self) -> Conn:
        """A connection of its own (listener, leader locks), on the store's schema."""
        try:
            return await asyncpg.connect(self.url, server_settings=self._settings())
        except _UNAVAILABLE as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc

    async def migrate(self) -> int:
        conn = await self.connect()
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    async def open(self) -> None:
        await self.migrate()
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=self.pool_size, server_settings=self._settings()
            )
        except _UNAVAILABLE as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        schema = await self._pool.fetchval("SELECT current_schema()")
        self.cluster = Cluster(self.connect, str(schema))

    async def close(self) -> None:
        if self._grouping is not None:
            with contextlib.suppress(Exception):
                await self._grouping  # inserts already accepted go in first
        if self.cluster is not None:
            await self.cluster.close()
            self.cluster = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def share_wakeups(
        self, notifier: WorkNotifier, on_webhooks: Callable[[], None] | None = None
    ) -> None:
        if self.cluster is None:
            raise StoreError("store is not open")
        await self.cluster.share(notifier, on_webhooks)

    async def run_once_in_cluster(self, job: str, run: Callable[[], Awaitable[None]]) -> None:
        if self.cluster is None:
            raise StoreError("store is not open")
        await self.cluster.run_as_leader(job, run)

    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool

    async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return list(await self.pool().fetch(sql, *args))
        except _UNAVAILABLE as exc:
            raise StoreError(str(exc)) from exc
        except asyncpg.CharacterNotInRepertoireError:
            raise InvalidInput(NUL_REFUSED) from None

    async def _one(self, sql: str, *args: Any) -> asyncpg.Record | None:
        rows = await self._all(sql, *args)
        return rows[0] if rows else None

    async def _write(self, op: Write[T], *, durable: bool = True) -> T:
        """Run `op` in one transaction; a deadlock or serialization loser runs again.

        `durable=False` answers without waiting for the WAL flush, for writes whose loss in a
        crash loses nothing: a pull's SIM offers, `lastseen`, a lease (an agent sends only what
        its commit confirmed, and a commit of a lease the crash forgot is rejected). Any later
        durable commit flushes them too, as the WAL is written in order."""
        for attempt in range(RETRIES):
            try:
                async with self.pool().acquire() as conn, conn.transaction():
                    if not durable:
                        await conn.execute("SET LOCAL synchronous_commit TO OFF")
                    return await op(cast(Conn, conn))  # a pool's proxy of a Connection
            except _RETRYABLE:
                if attempt == RETRIES - 1:
                    raise StoreError("transaction kept conflicting; try again") from None
                await asyncio.sleep(0.005 * (attempt + 1))
            except _UNAVAILABLE as exc:
                raise StoreError(str(exc)) from exc
            except asyncpg.CharacterNotInRepertoireError:
                raise InvalidInput(NUL_REFUSED) from None
        raise AssertionError("unreachable")

    async def _execute(self, sql: str, *args: Any, durable: bool = True) -> str:
        async def op(conn: Conn) -> str:
            return str(await conn.execute(sql, *args))

        return await self._write(op, durable=durable)

    async def _update(self, sql: str, *args: Any) -> None:
        if (await self._execute(sql, *args)).split()[-1] != "1":
            raise StoreError("no such row")

    # -- accounts --------------------------------------------------------------------------
    async def create_account(
        self, email: str, password_hash: str, token_hash: str, timezone: str, now: int
    ) -> Account:
        async def op(conn: Conn) -> int:
            try:
                account_id = await conn.fetchval(
                    "INSERT INTO accounts(email, password_hash, timezone, created)"
                    " VALUES ($1, $2, $3, $4) RETURNING id",
                    email, password_hash, timezone, now,
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                raise DuplicateEmail(email) from None
            await conn.execute(
                "INSERT INTO account_tokens(account_id, token_hash, created) VALUES ($1, $2, $3)",
                account_id, token_hash, now,
            )  # fmt: skip
            return int(account_id)

        account_id = await self._write(op)
        return Account(account_id, email, password_hash, timezone, now)

    async def account_by_email(self, email: str) -> Account | None:
        row = await self._one(
            f"SELECT {ACCOUNT_COLS} FROM accounts a WHERE lower(email) = lower($1)", email
        )
        return account_row(row) if row else None

    async def account_by_id(self, account_id: int) -> Account | None:
        row = await self._one(f"SELECT {ACCOUNT_COLS} FROM accounts a WHERE id = $1", account_id)
        return account_row(row) if row else None

    async def account_by_token_hash(self, token_hash: str) -> Account | None:
        row = await self._one(
            f"SELECT {ACCOUNT_COLS} FROM account_tokens t JOIN accounts a ON a.id = t.account_id"
            " WHERE t.token_hash = $1",
            token_hash,
        )
        return account_row(row) if row else None

    async def update_account(
        self, account_id: int, *, password_hash: str | None = None, timezone: str | None = None
    ) -> None:
        await self._update(
            "UPDATE accounts SET password_hash = COALESCE($1, password_hash),"
            " timezone = COALESCE($2, timezone) WHERE id = $3",
            password_hash, timezone, account_id,
        )  # fmt: skip

    async def list_accounts(self) -> list[Account]:
        rows = await self._all(f"SELECT {ACCOUNT_COLS} FROM accounts a ORDER BY a.id")
        return [account_row(r) for r in rows]

    async def add_account_token(
        self, account_id: int, token_hash: str, now: int, *, keep: int, revoke_others: bool = False
    ) -> None:
        async def op(conn: Conn) -> None:
            # The account row's lock orders concurrent token changes of one account.
            await conn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", account_id)
            if revoke_others:
                await conn.execute("DELETE FROM account_tokens WHERE account_id = $1", account_id)
            await conn.execute(
                "INSERT INTO account_tokens(account_id, token_hash, created) VALUES ($1, $2, $3)",
                account_id, token_hash, now,
            )  # fmt: skip
            await conn.execute(
                "DELETE FROM account_tokens WHERE account_id = $1 AND id NOT IN"
                " (SELECT id FROM account_tokens WHERE account_id = $1 ORDER BY id DESC LIMIT $2)",
                account_id, keep,
            )  # fmt: skip

        await self._write(op)

    # -- devices ---------------------------------------------------------------------------
    async def create_device(self, account_id: int, title: str, token_hash: str, now: int) -> Device:
        async def op(conn: Conn) -> int:
            return int(
                await conn.fetchval(
                    "INSERT INTO devices(account_id, title, token_hash, created)"
                    " VALUES ($1, $2, $3, $4) RETURNING id",
                    account_id,
                    title,
                    token_hash,
                    now,
                )  # fmt: skip
            )

        device_id = await self._write(op)
        return Device(
            id=device_id, account_id=account_id, title=title, token_hash=token_hash, created=now
        )

    async def device_by_id(self, device_id: int) -> Device | None:
        row = await self._one(f"SELECT {DEVICE_COLS} FROM devices WHERE id = $1", device_id)
        return device_row(row) if row else None

    async def device_by_token_hash(self, token_hash: str) -> Device | None:
        row = await self._one(
            f"SELECT {DEVICE_COLS} FROM devices WHERE token_hash = $1", token_hash
        )
        return device_row(row) if row else None

    async def list_devices(self, account_id: int | None = None) -> list[Device]:
        if account_id is None:
            rows = await self._all(f"SELECT {DEVICE_COLS} FROM devices ORDER BY id")
        else:
            rows = await self._all(
                f"SELECT {DEVICE_COLS} FROM devices WHERE account_id = $1 ORDER BY id", account_id
            )
        return [device_row(r) for r in rows]

    async def set_device_token(self, device_id: int, token_hash: str) -> None:
        await self._update(
            "UPDATE devices SET token_hash = $1 WHERE id = $2", token_hash, device_id
        )

    async def set_device_prefix_rules(
        self, device_id: int, rules: Sequence[tuple[str, str]]
    ) -> None:
        await self._update(
            "UPDATE devices SET prefix_rules = $1 WHERE id = $2",
            json.dumps([list(r) for r in rules]), device_id,
        )  # fmt: skip

    async def sims_of(self, device_ids: Sequence[int]) -> dict[int, list[Sim]]:
        out: dict[int, list[Sim]] = {i: [] for i in device_ids}
        if not device_ids:
            return out
        rows = await self._all(
            f"SELECT {SIM_COLS} FROM sims WHERE device_id = ANY($1::bigint[])"
            " ORDER BY device_id, slot",
            list(device_ids),
        )
        for row in rows:
            out[row[0]].append(sim_row(row))
        return out

    async def touch_device(self, device_id: int, now: int) -> None:
        await self._execute(
            "UPDATE devices SET lastseen = $1 WHERE id = $2", now, device_id, durable=False
        )

    # -- messages --------------------------------------------------------------------------
    async def insert_messages(
        self,
        messages: Sequence[NewMessage],
        now: int,
        then: AfterInsert | None = None,
        meters: Sequence[Meter] = (),
    ) -> list[int]:
        if not messages:
            return []
        if then is not None:  # its own transaction: the follow-up is not grouped with others
            return await self._insert_rows([(m, now) for m in messages], then, meters)
        if len(messages) == 1:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._queued.append((messages[0], now, meters, future))
            if self._grouping is None or self._grouping.done():
                self._grouping = asyncio.create_task(self._insert_groups(), name="pg-inserts")
            return [await future]
        return await self._insert_rows([(m, now) for m in messages], None, meters)

    async def _insert_rows(
        self,
        rows: Sequence[tuple[NewMessage, int]],
        then: AfterInsert | None = None,
        meters: Sequence[Meter] = (),
        counts: Sequence[tuple[Meter, int]] = (),
    ) -> list[int]:
        """Insert `rows` in one transaction, counting len(rows) on each of `meters`, or each
        (meter, n) of `counts` (a group of sends)."""
        counts = list(counts) + [(m, len(rows)) for m in meters]
        columns = (
            [m.account_id for m, _ in rows],
            [m.device_id for m, _ in rows],
            [m.sendto for m, _ in rows],
            [m.body for m, _ in rows],
            [m.sim for m, _ in rows],
            [int(m.urgent) for m, _ in rows],
            [m.customerid for m, _ in rows],
            [now for _, now in rows],
            [m.timetosend for m, _ in rows],
            [m.pool_id for m, _ in rows],
        )

        async def op(conn: Conn) -> list[int]:
            if counts:  # first: the counters' row locks order concurrent sends (pg_native.py)
                await count_each(conn, counts)
            # One statement for all rows; the identity column numbers them in the order they
            # are inserted (ORDER BY n), so sorted ids are the input order.
            found = await conn.fetch(_INSERT_MANY, *columns)
            ids = sorted(int(r[0]) for r in found)
            if then is not None:
                step = then(conn, ids)
                if step is None:
                    raise TypeError("a PostgreSQL insert follow-up must be async")
                await step
            return ids

        return await self._write(op)

    async def _insert_groups(self) -> None:
        while self._queued:
            group, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
            # The group's sends counted together: one upsert per counter for all of them.
            totals: dict[tuple[int, int, str], tuple[Meter, int]] = {}
            for _, _, meters, _ in group:
                for meter in meters:
                    key = (meter.account_id, meter.key_id, meter.period)
                    totals[key] = (meter, totals[key][1] + 1 if key in totals else 1)
            try:
                rows = [(m, now) for m, now, _, _ in group]
                ids = await self._insert_rows(rows, counts=list(totals.values()))
                self.groups += 1
            except Exception as exc:
                if len(group) == 1:
                    _settle(group[0][3], exc)
                    continue
                # One bad row fails the whole statement, and a group past a quota the whole
                # group: each again on its own, so that only those fail that would have failed
                # without company (sends past the quota, in the order they came).
                for m, now, meters, future in group:
                    try:
                        _settle(future, (await self._insert_rows([(m, now)], None, meters))[0])
                    except Exception as alone:
                        _settle(future, alone)
                continue
            for (_, _, _, future), sms_id in zip(group, ids, strict=True):
                _settle(future, sms_id)

    async def message_by_id(self, account_id: int, sms_id: int) -> Message | None:
        row = await self._one(
            f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
            " WHERE m.id = $1 AND m.account_id = $2",
            sms_id, account_id,
        )  # fmt: skip
        return message_row(row) if row else None

    @staticmethod
    def _where(flt: MessageFilter) -> tuple[str, list[Any]]:
        params: list[Any] = [flt.account_id]
        clauses = ["m.account_id = $1"]
        for clause, value in (
            ("m.device_id = ${}", flt.device_id),
            ("m.sim = ${}", flt.sim),
            ("m.status = ${}", flt.status),
            ("m.customerid = ${}", flt.customerid),
            ("m.sendto = ${}", flt.sendto),
            ("m.created >= ${}", flt.created_from),
            ("m.created <= ${}", flt.created_to),
        ):
            if value is not None:
                params.append(value)
                clauses.append(clause.format(len(params)))
        return " AND ".join(clauses), params

    async def list_messages(self, flt: MessageFilter) -> list[Message]:
        where, params = self._where(flt)
        order = "DESC" if flt.descending else "ASC"
        n = len(params)
        rows = await self._all(
            f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
            f" WHERE {where} ORDER BY m.id {order} LIMIT ${n + 1} OFFSET ${n + 2}",
            *params, flt.limit, flt.offset,
        )  # fmt: skip
        return [message_row(r) for r in rows]

    async def count_messages(self, flt: MessageFilter) -> int:
        unfiltered = MessageFilter(flt.account_id, descending=flt.descending, limit=flt.limit,
                                   offset=flt.offset)  # fmt: skip
        if flt == unfiltered:
            row = await self._one(
                "SELECT COALESCE(SUM(messages), 0), COUNT(*) FROM account_message_counts"
                " WHERE account_id = $1",
                flt.account_id,
            )
            assert row is not None
            if int(row[1]) > COUNT_ROWS_FOLD:
                await self._fold_counts(flt.account_id)
            return int(row[0])
        where, params = self._where(flt)
        row = await self._one(f"SELECT COUNT(*) FROM messages m WHERE {where}", *params)
        return int(row[0]) if row else 0

    async def _fold_counts(self, account_id: int) -> None:
        # Rows a concurrent fold already took are gone when this DELETE gets to them, so the
        # sum is kept whichever fold wins.
        await self._execute(
            "WITH gone AS (DELETE FROM account_message_counts WHERE account_id = $1"
            " RETURNING messages) INSERT INTO account_message_counts(account_id, messages)"
            " SELECT $1, SUM(messages) FROM gone HAVING COUNT(*) > 0",
            account_id,
        )

    # -- tags, contacts, pakets ------------------------------------------------------------
    async def create_tag(self, account_id: int, title: str, now: int) -> int:
        async def op(conn: Conn) -> int:
            return int(
                await conn.fetchval(
                    "INSERT INTO tags(account_id, title, created) VALUES ($1, $2, $3) RETURNING id",
                    account_id,
                    title,
                    now,
                )  # fmt: skip
            )

        return await self._write(op)

    async def existing_tags(self, account_id: int, tag_ids: Sequence[int]) -> set[int]:
        if not tag_ids:
            return set()
        rows = await self._all(
            "SELECT id FROM tags WHERE account_id = $1 AND id = ANY($2::bigint[])",
            account_id, list(tag_ids),
        )  # fmt: skip
        return {int(r[0]) for r in rows}

    async def create_contact(
        self, account_id: int, tag_id: int, phone: str, fullname: str | None, now: int
    ) -> int:
        async def op(conn: Conn) -> int:
            owned = await conn.fetchval(
                "SELECT 1 FROM tags WHERE id = $1 AND account_id = $2 FOR SHARE",
                tag_id, account_id,
            )  # fmt: skip
            if owned is None:
                raise StoreError("tag vanished")
            return int(
                await conn.fetchval(
                    "INSERT INTO contacts(account_id, tag_id, phone, fullname, created)"
                    " VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    account_id,
                    tag_id,
                    phone,
                    fullname,
                    now,
                )  # fmt: skip
            )

        return await self._write(op)

    async def create_paket(self, paket: NewPaket, now: int) -> PaketResult:
        due = now if paket.timetosend is None else paket.timetosend

        async def op(conn: Conn) -> PaketResult:
            paket_id = int(
                await conn.fetchval(
                    "INSERT INTO pakets(account_id, device_id, title, body, sim, tags, timetosend,"
                    " created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    paket.account_id,
                    paket.device_id,
                    paket.title,
                    paket.body,
                    paket.sim,
                    ",".join(str(t) for t in paket.tag_ids),
                    paket.timetosend,
                    now,
                )  # fmt: skip
            )
            # One message per distinct phone across the tags, in the order contacts were added.
            rows = await conn.fetch(
                "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim,"
                " status, urgent, customerid, created, timetosend, due, status_changed,"
                " paket_id) SELECT $1, $2, 'out', phone, $3, $4, 1, 0, NULL, $5, $6, $7, $5, $8"
                " FROM (SELECT phone, MIN(id) AS first FROM contacts WHERE account_id = $1"
                " AND tag_id = ANY($9::bigint[]) GROUP BY phone) c ORDER BY first RETURNING id",
                paket.account_id, paket.device_id, paket.body, paket.sim, now,
                paket.timetosend, due, paket_id, list(paket.tag_ids),
            )  # fmt: skip
            return PaketResult(paket_id, sorted(int(r[0]) for r in rows))

        return await self._write(op)


def _settle(future: asyncio.Future[int], outcome: int | BaseException) -> None:
    if future.done():  # the request was cancelled; its row is stored all the same
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
