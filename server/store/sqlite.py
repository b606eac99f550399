"""The embedded store: SQLite in WAL mode through aiosqlite (reads) and a group-commit writer.

Durability: `journal_mode=WAL` and `synchronous=FULL` on the write connection, so every COMMIT
fsyncs the WAL before a write is acknowledged (see writer.py for how one commit serves many
requests). Reads run on their own aiosqlite connection and never wait for the writer. Other
processes (the admin CLI while the server runs) use the same file; `busy_timeout` makes them queue
for the write lock instead of failing.

The agent routes' frequent reads (the device of a token, a pull's "is anything due") run on a
third connection on the event loop's own thread instead (`_quick`): each is an indexed look-up
of tens of microseconds, and a round trip through aiosqlite's thread cost about 56,000
instructions more per read than the read itself (callgrind, docs/benchmarks.md). In WAL mode a
reader does not wait for the writer, so the loop is not held up by a commit; when SQLite answers
busy (a checkpoint or recovery holding the read lock) the read goes to the reader thread, which
waits it out. A pull check that finds nothing due walks the waiting messages it could take (about
0.3 ms with 2,000 pool messages not yet due); that time is now the loop's.
"""

from __future__ import annotations

import inspect
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

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
from simhive.server.store import sqlite_open
from simhive.server.store.base import (
    AfterInsert,
    DuplicateEmail,
    Store,
    StoreError,
    StoreOpenError,
)
from simhive.server.store.sqlite_account_webhooks import SqliteAccountWebhookStore
from simhive.server.store.sqlite_agent import SeenStamps, SqliteAgentStore
from simhive.server.store.sqlite_campaigns import SqliteCampaignStore
from simhive.server.store.sqlite_delete import SqliteDeleteStore
from simhive.server.store.sqlite_devices import SqliteDeviceAdminStore
from simhive.server.store.sqlite_groups import SqliteGroupStore
from simhive.server.store.sqlite_idempotency import SqliteIdempotencyStore
from simhive.server.store.sqlite_native import SqliteNativeStore, meter_check
from simhive.server.store.sqlite_otp import SqliteOtpStore
from simhive.server.store.sqlite_pools import SqlitePoolStore
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
from simhive.server.store.sqlite_schema import migrate
from simhive.server.store.sqlite_templates import SqliteTemplateStore
from simhive.server.store.sqlite_webhooks import SqliteWebhookStore
from simhive.server.store.writer import GroupCommitWriter, RowInsert

BUSY_TIMEOUT_MS = 10_000
INLINE_CACHE_KIB = 256

_INSERT_MESSAGES_JSON = (
    "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status, urgent,"
    " customerid, created, timetosend, due, status_changed, pool_id)"
    " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), 'out',"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), 1,"
    " json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[7]'),"
    " json_extract(value, '$[8]'), json_extract(value, '$[9]'), json_extract(value, '$[10]'),"
    " json_extract(value, '$[11]') FROM json_each(?) ORDER BY key"
)
_MESSAGE_ROW = RowInsert(
    "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status, urgent,"
    " customerid, created, timetosend, due, status_changed, pool_id) VALUES ",
    "(?, ?, 'out', ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)",
)
_INSERT_MESSAGE = _MESSAGE_ROW.sql(1)


def _seq(conn: sqlite3.Connection, table: str) -> int:
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()
    return int(row[0]) if row else 0


def _configure(conn: sqlite3.Connection, busy_timeout_ms: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")


class SqliteStore(
    SqliteAgentStore,
    SqlitePoolStore,
    SqliteWebhookStore,
    SqliteIdempotencyStore,
    SqliteDeleteStore,
    SqliteNativeStore,
    SqliteTemplateStore,
    SqliteGroupStore,
    SqliteCampaignStore,
    SqliteDeviceAdminStore,
    SqliteOtpStore,
    SqliteAccountWebhookStore,
    Store,
):
    def __init__(self, path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.seen = SeenStamps()
        self.writer = GroupCommitWriter(self._connect_writer, before_commit=self.seen.flush)
        self._json_insert = True
        self._reader: aiosqlite.Connection | None = None
        self._inline: sqlite3.Connection | None = None

    # -- life cycle ------------------------------------------------------------------------
    def _connect_writer(self) -> sqlite3.Connection:
        sqlite_open.prepare(self.path)  # created private; a bad path fails with a hint
        try:
            return self._connect_checked()
        except sqlite3.Error as exc:
            raise sqlite_open.open_error(self.path, exc) from None

    def _connect_checked(self) -> sqlite3.Connection:
        # Merged inserts (writer.RowInsert) use up to MERGE_ROWS statement texts of their own:
        # room for them beside everything else in the statement cache (default 128).
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        try:
            self._setup_writer(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _setup_writer(self, conn: sqlite3.Connection) -> None:
        _configure(conn, self.busy_timeout_ms)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreOpenError(
                f"cannot put {self.path} into WAL mode (SQLite answered {mode!r})",
                "keep the database on a local disk: WAL needs shared memory, which network file"
                " systems lack",
            )
        # FULL: the WAL is fsynced at every commit, so an acknowledged write survives power loss.
        conn.execute("PRAGMA synchronous = FULL")
        migrate(conn)
        try:
            conn.execute("SELECT json_extract(value, '$[0]') FROM json_each('[[1]]')").fetchall()
        except sqlite3.OperationalError:  # an SQLite built without JSON: plain executemany
            self._json_insert = False

    async def open(self) -> None:
        try:
            await self.writer.start()
        except BaseException:
            await self.writer.stop()  # ends the writer thread the failed start left behind
            raise
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        await self._reader.execute("PRAGMA query_only = 1")
        # No busy wait on the event loop: a busy answer goes to the reader thread (see `_quick`).
        # A small page cache: a WAL reader drops it whenever another connection committed, which
        # the writer does between most of these reads anyway.
        self._inline = sqlite3.connect(self.path, isolation_level=None)
        self._inline.execute("PRAGMA busy_timeout = 0")
        self._inline.execute("PRAGMA query_only = 1")
        self._inline.execute(f"PRAGMA cache_size = -{INLINE_CACHE_KIB}")

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        await self.writer.stop()

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StoreError("store is not open")
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except sqlite3.OperationalError as exc:  # locked too long, disk I/O: the caller may retry
            raise StoreError(str(exc)) from exc

    async def _quick(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """A read on the event loop's thread (module docstring); busy, it is read on the
        reader thread instead."""
        conn = self._inline
        if conn is None:
            raise StoreError("store is not open")
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # busy or locked
            return await self._all(sql, params)

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    # -- accounts --------------------------------------------------------------------------
    async def create_account(
        self, email: str, password_hash: str, token_hash: str, timezone: str, now: int
    ) -> Account:
        def op(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    "INSERT INTO accounts(email, password_hash, timezone, created)"
                    " VALUES (?, ?, ?, ?)",
                    (email, password_hash, timezone, now),
                )
            except sqlite3.IntegrityError as exc:
                if "email" in str(exc):
                    raise DuplicateEmail(email) from None
                raise
            account_id = int(cur.lastrowid or 0)
            conn.execute(
                "INSERT INTO account_tokens(account_id, token_hash, created) VALUES (?, ?, ?)",
                (account_id, token_hash, now),
            )
            return account_id

        account_id = await self.writer.submit(op)
        return Account(account_id, email, password_hash, timezone, now)

    async def account_by_email(self, email: str) -> Account | None:
        row = await self._one(f"SELECT {ACCOUNT_COLS} FROM accounts a WHERE email = ?", (email,))
        return account_row(row) if row else None

    async def account_by_id(self, account_id: int) -> Account | None:
        row = await self._one(f"SELECT {ACCOUNT_COLS} FROM accounts a WHERE id = ?", (account_id,))
        return account_row(row) if row else None

    async def account_by_token_hash(self, token_hash: str) -> Account | None:
        row = await self._one(
            f"SELECT {ACCOUNT_COLS} FROM account_tokens t JOIN accounts a ON a.id = t.account_id"
            " WHERE t.token_hash = ?",
            (token_hash,),
        )
        return account_row(row) if row else None

    async def update_account(
        self, account_id: int, *, password_hash: str | None = None, timezone: str | None = None
    ) -> None:
        await self._update(
            "UPDATE accounts SET password_hash = COALESCE(?, password_hash),"
            " timezone = COALESCE(?, timezone) WHERE id = ?",
            (password_hash, timezone, account_id),
        )

    async def list_accounts(self) -> list[Account]:
        return [
            account_row(r)
            for r in await self._all(f"SELECT {ACCOUNT_COLS} FROM accounts a ORDER BY a.id")
        ]

    async def add_account_token(
        self, account_id: int, token_hash: str, now: int, *, keep: int, revoke_others: bool = False
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            if revoke_others:
                conn.execute("DELETE FROM account_tokens WHERE account_id = ?", (account_id,))
            conn.execute(
                "INSERT INTO account_tokens(account_id, token_hash, created) VALUES (?, ?, ?)",
                (account_id, token_hash, now),
            )
            conn.execute(
                "DELETE FROM account_tokens WHERE account_id = ? AND id NOT IN"
                " (SELECT id FROM account_tokens WHERE account_id = ? ORDER BY id DESC LIMIT ?)",
                (account_id, account_id, keep),
            )

        await self.writer.submit(op)

    async def _update(self, sql: str, params: Sequence[Any]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            if conn.execute(sql, params).rowcount != 1:
                raise StoreError("no such row")

        await self.writer.submit(op)

    # -- devices ---------------------------------------------------------------------------
    async def create_device(self, account_id: int, title: str, token_hash: str, now: int) -> Device:
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO devices(account_id, title, token_hash, created) VALUES (?, ?, ?, ?)",
                (account_id, title, token_hash, now),
            )
            return int(cur.lastrowid or 0)

        device_id = await self.writer.submit(op)
        return Device(
            id=device_id, account_id=account_id, title=title, token_hash=token_hash, created=now
        )

    async def device_by_id(self, device_id: int) -> Device | None:
        row = await self._one(f"SELECT {DEVICE_COLS} FROM devices WHERE id = ?", (device_id,))
        return device_row(row) if row else None

    async def device_by_token_hash(self, token_hash: str) -> Device | None:
        rows = await self._quick(
            f"SELECT {DEVICE_COLS} FROM devices WHERE token_hash = ?", (token_hash,)
        )
        return device_row(rows[0]) if rows else None

    async def list_devices(self, account_id: int | None = None) -> list[Device]:
        if account_id is None:
            rows = await self._all(f"SELECT {DEVICE_COLS} FROM devices ORDER BY id")
        else:
            rows = await self._all(
                f"SELECT {DEVICE_COLS} FROM devices WHERE account_id = ? ORDER BY id",
                (account_id,),
            )
        return [device_row(r) for r in rows]

    async def set_device_token(self, device_id: int, token_hash: str) -> None:
        await self._update(
            "UPDATE devices SET token_hash = ? WHERE id = ?", (token_hash, device_id)
        )

    async def set_device_prefix_rules(
        self, device_id: int, rules: Sequence[tuple[str, str]]
    ) -> None:
        await self._update(
            "UPDATE devices SET prefix_rules = ? WHERE id = ?",
            (json.dumps([list(r) for r in rules]), device_id),
        )

    async def sims_of(self, device_ids: Sequence[int]) -> dict[int, list[Sim]]:
        out: dict[int, list[Sim]] = {i: [] for i in device_ids}
        if not device_ids:
            return out
        marks = ",".join("?" * len(device_ids))
        rows = await self._all(
            f"SELECT {SIM_COLS} FROM sims WHERE device_id IN ({marks}) ORDER BY device_id, slot",
            list(device_ids),
        )
        for row in rows:
            out[row[0]].append(sim_row(row))
        return out

    async def touch_device(self, device_id: int, now: int) -> None:
        def op(conn: sqlite3.Connection) -> None:
            self.seen.stamp(device_id, now)  # written before the batch's COMMIT

        await self.writer.submit(op)

    # -- messages --------------------------------------------------------------------------
    async def insert_messages(
        self,
        messages: Sequence[NewMessage],
        now: int,
        then: AfterInsert | None = None,
        meters: Sequence[Meter] = (),
    ) -> list[int]:
        rows = [
            (
                m.account_id,
                m.device_id,
                m.sendto,
                m.body,
                m.sim,
                1 if m.urgent else 0,
                m.customerid,
                now,
                m.timetosend,
                now if m.timetosend is None else m.timetosend,
                now,
                m.pool_id,
            )
            for m in messages
        ]

        # A batch travels as one JSON array and is inserted by one statement: executemany
        # re-takes the GIL after every row's step, and while the event loop is busy parsing the
        # next batch those hand-overs cost the writer more than SQLite's own work (bench
        # server_ingest). NUL characters are the one thing the JSON route could truncate.
        as_json = (
            json.dumps(rows, ensure_ascii=False)
            if len(rows) > 1 and self._json_insert and not any("\x00" in r[3] for r in rows)
            else None
        )

        if len(rows) == 1 and then is None and not meters:  # merged with its neighbours
            return [await self.writer.insert(_MESSAGE_ROW, rows[0])]

        def insert_many(conn: sqlite3.Connection) -> list[int]:
            # Ids from the AUTOINCREMENT sequence: the transaction holds the write lock, so the
            # rows get consecutive ids; checked rather than assumed.
            before = _seq(conn, "messages")
            if as_json is not None:
                conn.execute(_INSERT_MESSAGES_JSON, (as_json,))
            else:
                conn.executemany(_INSERT_MESSAGE, rows)
            after = _seq(conn, "messages")
            if after - before == len(rows):
                return list(range(before + 1, after + 1))
            # Not seen in practice (the transaction holds the write lock); read them back in
            # insertion order rather than fail after writing.
            found = conn.execute(
                "SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT ?", (before, len(rows))
            )
            return [int(r[0]) for r in found]

        def op(conn: sqlite3.Connection) -> list[int]:
            if meters:
                meter_check(conn, meters, len(rows))
            if len(rows) == 1:  # (a metered or followed-up one): its id needs no sequence reads
                ids = [int(conn.execute(_INSERT_MESSAGE, rows[0]).lastrowid or 0)]
            else:
                ids = insert_many(conn)
            step = then(conn, ids) if then is not None else None
            if step is not None:
                if inspect.iscoroutine(step):
                    step.close()  # never run: no "never awaited" warning on top of the error
                raise TypeError("an async insert follow-up is PostgreSQL's, not SQLite's")
            return ids

        if not rows:
            return []
        # One writing statement (the JSON INSERT; the sequence reads write nothing) needs no
        # savepoint; executemany writes row by row and does, and so does a follow-up (`then`),
        # which must be undone with the insert if it fails.
        return await self.writer.submit(
            op, atomic=as_json is not None and then is None and not meters
        )

    async def message_by_id(self, account_id: int, sms_id: int) -> Message | None:
        row = await self._one(
            f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
            " WHERE m.id = ? AND m.account_id = ?",
            (sms_id, account_id),
        )
        return message_row(row) if row else None

    @staticmethod
    def _where(flt: MessageFilter) -> tuple[str, list[Any]]:
        clauses = ["m.account_id = ?"]
        params: list[Any] = [flt.account_id]
        for column, value in (
            ("m.device_id", flt.device_id),
            ("m.sim", flt.sim),
            ("m.status", flt.status),
            ("m.customerid", flt.customerid),
            ("m.sendto", flt.sendto),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if flt.created_from is not None:
            clauses.append("m.created >= ?")
            params.append(flt.created_from)
        if flt.created_to is not None:
            clauses.append("m.created <= ?")
            params.append(flt.created_to)
        return " AND ".join(clauses), params

    async def list_messages(self, flt: MessageFilter) -> list[Message]:
        where, params = self._where(flt)
        order = "DESC" if flt.descending else "ASC"
        rows = await self._all(
            f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
            f" WHERE {where} ORDER BY m.id {order} LIMIT ? OFFSET ?",
            [*params, flt.limit, flt.offset],
        )
        return [message_row(r) for r in rows]

    async def count_messages(self, flt: MessageFilter) -> int:
        unfiltered = MessageFilter(flt.account_id, descending=flt.descending, limit=flt.limit,
                                   offset=flt.offset)  # fmt: skip
        if flt == unfiltered:  # the common poll: kept by triggers (migration 6)
            row = await self._one(
                "SELECT messages FROM account_message_counts WHERE account_id = ?",
                (flt.account_id,),
            )
            return int(row[0]) if row else 0
        where, params = self._where(flt)
        row = await self._one(f"SELECT COUNT(*) FROM messages m WHERE {where}", params)
        return int(row[0])

    # -- tags, contacts, pakets ------------------------------------------------------------
    async def create_tag(self, account_id: int, title: str, now: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO tags(account_id, title, created) VALUES (?, ?, ?)",
                (account_id, title, now),
            )
            return int(cur.lastrowid or 0)

        return await self.writer.submit(op)

    async def existing_tags(self, account_id: int, tag_ids: Sequence[int]) -> set[int]:
        if not tag_ids:
            return set()
        marks = ",".join("?" * len(tag_ids))
        rows = await self._all(
            f"SELECT id FROM tags WHERE account_id = ? AND id IN ({marks})",
            [account_id, *tag_ids],
        )
        return {int(r[0]) for r in rows}

    async def create_contact(
        self, account_id: int, tag_id: int, phone: str, fullname: str | None, now: int
    ) -> int:
        def op(conn: sqlite3.Connection) -> int:
            owned = conn.execute(
                "SELECT 1 FROM tags WHERE id = ? AND account_id = ?", (tag_id, account_id)
            ).fetchone()
            if owned is None:
                raise StoreError("tag vanished")
            cur = conn.execute(
                "INSERT INTO contacts(account_id, tag_id, phone, fullname, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (account_id, tag_id, phone, fullname, now),
            )
            return int(cur.lastrowid or 0)

        return await self.writer.submit(op)

    async def create_paket(self, paket: NewPaket, now: int) -> PaketResult:
        marks = ",".join("?" * len(paket.tag_ids))
        due = now if paket.timetosend is None else paket.timetosend

        def op(conn: sqlite3.Connection) -> PaketResult:
            cur = conn.execute(
                "INSERT INTO pakets(account_id, device_id, title, body, sim, tags, timetosend,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    paket.account_id,
                    paket.device_id,
                    paket.title,
                    paket.body,
                    paket.sim,
                    ",".join(str(t) for t in paket.tag_ids),
                    paket.timetosend,
                    now,
                ),
            )
            paket_id = int(cur.lastrowid or 0)
            before = _seq(conn, "messages")
            # One message per distinct phone across the tags, in the order contacts were added;
            # selected inside the write transaction so the expansion is consistent.
            conn.execute(
                "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status,"
                " urgent, customerid, created, timetosend, due, status_changed, paket_id)"
                " SELECT ?, ?, 'out', phone, ?, ?, 1, 0, NULL, ?, ?, ?, ?, ? FROM contacts"
                f" WHERE account_id = ? AND tag_id IN ({marks})"
                " GROUP BY phone ORDER BY MIN(id)",
                (
                    paket.account_id,
                    paket.device_id,
                    paket.body,
                    paket.sim,
                    now,
                    paket.timetosend,
                    due,
                    now,
                    paket_id,
                    paket.account_id,
                    *paket.tag_ids,
                ),
            )
            after = _seq(conn, "messages")
            return PaketResult(paket_id, list(range(before + 1, after + 1)))

        return await self.writer.submit(op)
