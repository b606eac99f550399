"""Several servers on one PostgreSQL database: shared wake-ups and one runner per background job.

Wake-ups. A server that stores work for a device wakes that device's long poll wherever it is
parked: the core's notifier relays each wake-up here, and it goes out as `NOTIFY simhive_<schema>,
'd:<server>:<ids>'` on a connection of its own (ids gathered while the previous NOTIFY was in
flight go out together). Every server LISTENs on that channel and wakes its own parked polls.
The webhook outbox triggers notify `'w'` in the transaction that writes the rows (pg_schema.py),
which wakes the webhook sender wherever it runs. A listener that loses its connection wakes every
local poll once it is back: they look at the store again instead of missing a wake-up.

Background jobs. The lease sweeper and the webhook sender run on one server at a time: a job runs
while its server holds a session advisory lock on a connection of its own. The lock goes when
that connection does (the server stopped or was killed, the network failed), and another server
takes it within LEADER_RETRY_SECONDS. A leader checks its connection every LEADER_CHECK_SECONDS
and stops the job when it is gone, so two servers run one job together for at most about that
long after a network split (webhook receivers get each event's key to drop a repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from simhive.server.core.notifier import WorkNotifier
from simhive.server.store.base import StoreError
from simhive.server.store.pg_schema import lock_key

log = logging.getLogger("simhive.cluster")

LEADER_RETRY_SECONDS = 1.0
LEADER_CHECK_SECONDS = 1.0
RECONNECT_SECONDS = 0.5
# How long a starting server waits for its wake-up channel before it serves without it.
LISTEN_WAIT_SECONDS = 10.0
# NOTIFY payloads must stay under 8000 bytes: device ids go out in chunks of this many.
IDS_PER_NOTIFY = 500
_CONNECTION_LOST = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    StoreError,
)

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class Cluster:
    def __init__(self, connect: Connect, schema: str) -> None:
        self.connect = connect
        self.schema = schema
        self.channel = f"simhive_{schema}"
        self.server_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._notifier: WorkNotifier | None = None
        self._on_webhooks: Callable[[], None] | None = None
        self._pending: set[int] = set()
        self._sender: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._publish_conn: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self.published = 0  # NOTIFY statements sent (tests, benchmarks)
        self.received = 0  # device wake-ups from other servers

    # -- wake-ups --------------------------------------------------------------------------
    async def share(
        self, notifier: WorkNotifier, on_webhooks: Callable[[], None] | None = None
    ) -> None:
        """Relay the notifier's wake-ups and listen for the others'; returns once listening."""
        self._notifier = notifier
        self._on_webhooks = on_webhooks
        notifier.relay = self.publish
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="simhive-pg-listen")
        try:
            async with asyncio.timeout(LISTEN_WAIT_SECONDS):
                await self._listening.wait()
        except TimeoutError:  # serve anyway: the listener keeps trying, polls time out as usual
            log.warning("not listening for other servers' wake-ups yet; still trying")

    def publish(self, device_id: int) -> None:
        self._pending.add(device_id)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="simhive-pg-notify")

    async def _send(self) -> None:
        while self._pending:
            ids = sorted(self._pending)
            self._pending.clear()
            try:
                if self._publish_conn is None or self._publish_conn.is_closed():
                    self._publish_conn = await self.connect()
                for start in range(0, len(ids), IDS_PER_NOTIFY):
                    chunk = ",".join(str(i) for i in ids[start : start + IDS_PER_NOTIFY])
                    await self._publish_conn.execute(
                        "SELECT pg_notify($1, $2)", self.channel, f"d:{self.server_id}:{chunk}"
                    )
                    self.published += 1
            except _CONNECTION_LOST as exc:
                # The other servers' polls find the work at their next look (a poll's own
                # timeout); the local ones were woken already.
                log.warning("could not tell the other servers about new work: %s", exc)
                self._publish_conn = None
                return

    def _received(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        payload = str(payload)
        if payload == "w":
            if self._on_webhooks is not None:
                self._on_webhooks()
            return
        kind, _, rest = payload.partition(":")
        sender, _, ids = rest.partition(":")
        if kind != "d" or sender == self.server_id or self._notifier is None:
            return
        for text in ids.split(","):
            with contextlib.suppress(ValueError):
                self._notifier.wake(int(text))
                self.received += 1

    async def _listen(self) -> None:
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.connect()
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._received)
                self._listening.set()
                if not first and self._notifier is not None:
                    self._notifier.wake_all()  # what was said while we were away
                    if self._on_webhooks is not None:
                        self._on_webhooks()
                first = False
                while not lost.is_set():
                    # A dead TCP peer shows only when something is sent: look now and then.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(LEADER_CHECK_SECONDS * 5):
                            await lost.wait()
                    if not lost.is_set():
                        async with asyncio.timeout(LEADER_CHECK_SECONDS * 5):
                            await conn.fetchval("SELECT 1")
            except _CONNECTION_LOST as exc:
                log.warning("lost the wake-up channel (%s); reconnecting", exc)
            finally:
                if conn is not None:
                    with contextlib.suppress(*_CONNECTION_LOST):
                        await conn.close(timeout=1)
            await asyncio.sleep(RECONNECT_SECONDS)

    # -- one runner per job ----------------------------------------------------------------
    async def run_as_leader(self, job: str, run: Callable[[], Awaitable[None]]) -> None:
        key = lock_key(self.schema, f"job:{job}")
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.connect()
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):  # noqa: ASYNC110
                    # Polling, not waiting: the lock frees when another server's connection
                    # dies, which no event here tells.
                    await asyncio.sleep(LEADER_RETRY_SECONDS)
                log.info("this server runs the %s", job)
                await self._lead(conn, run)
            except _CONNECTION_LOST as exc:
                log.warning("%s: lost the database connection (%s)", job, exc)
            finally:
                if conn is not None:
                    with contextlib.suppress(*_CONNECTION_LOST):
                        await conn.close(timeout=1)
            await asyncio.sleep(RECONNECT_SECONDS)

    async def _lead(self, conn: asyncpg.Connection, run: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.ensure_future(run())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=LEADER_CHECK_SECONDS)
                if done:
                    task.result()  # a job returns only when cancelled; surface a crash
                    return
                # The lock is held only while this connection lives.
                async with asyncio.timeout(LEADER_CHECK_SECONDS * 5):
                    await conn.fetchval("SELECT 1")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        if self._notifier is not None:
            self._notifier.relay = None
        for task in (self._listener, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._listener = self._sender = None
        if self._publish_conn is not None:
            with contextlib.suppress(*_CONNECTION_LOST):
                await self._publish_conn.close(timeout=1)
            self._publish_conn = None
