"""The SMPP listener: accepts ESME connections (plain TCP or TLS), runs a Session per
connection, and holds what sessions share: the limits, the per-account submit rate and the keys'
rates, the watch on the bound keys (revoked ones lose their sessions), the outbox poll, and the
background pruning of old outbox rows and abandoned parts.

`simhive-server run --smpp-port N` starts it beside the HTTP API, in the same process and over
the same Gateway; docs/smpp.md lists the settings.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable

from simhive.server.core import limits
from simhive.server.core.dates import US, now_us
from simhive.server.core.errors import LimitReached
from simhive.server.core.gateway import Gateway
from simhive.server.core.keys import Keys
from simhive.server.smpp.auth import Authenticator, Principal
from simhive.server.smpp.requests import Requests
from simhive.server.smpp.session import Session
from simhive.server.smpp.settings import SmppSettings
from simhive.server.store.base import StoreError
from simhive.server.store.smpp_store import SmppStore

log = logging.getLogger("simhive.smpp")


class TokenBucket:
    """`rate` per second with bursts of `rate` (at least 1); `take()` is checked and spent in
    one step with no await, so concurrent sessions cannot overdraw it."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class SmppServer:
    def __init__(
        self,
        gateway: Gateway,
        store: SmppStore,
        auth: Authenticator,
        settings: SmppSettings | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sock: socket.socket | None = None,
        keys: Keys | None = None,
    ) -> None:
        self.gateway = gateway
        # The app's key registry (its rate buckets and last-use marks), or one of our own.
        self.keys = keys or Keys(gateway.store, gateway.clock)
        self.store = store
        self.auth = auth
        self.settings = settings or SmppSettings()
        self.ssl_context = ssl_context
        self.sock = sock  # bound by the caller already (listen_socket), or None: bind here
        self.requests = Requests(gateway, store)
        self.sessions: set[Session] = set()
        self._buckets: dict[int, TokenBucket] = {}
        self._server: asyncio.Server | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        s = self.settings
        where = {"sock": self.sock} if self.sock is not None else {"host": s.host, "port": s.port}
        self._server = await asyncio.start_server(
            self._accept,
            **where,
            ssl=self.ssl_context,
            ssl_handshake_timeout=s.bind_timeout if self.ssl_context else None,
        )
        self._housekeeping = asyncio.create_task(self._prune_loop())
        self._poller = asyncio.create_task(self._poll_outbox())
        self._watcher = asyncio.create_task(self._watch_keys())
        scheme = "smpps" if self.ssl_context else "smpp"
        log.info("SMPP server listening on %s://%s:%d", scheme, s.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = (self._housekeeping, self._poller, self._watcher)
        background = [t for t in tasks if t is not None]
        for task in background:
            task.cancel()
        sessions = list(self.sessions)
        await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)
        await asyncio.gather(*background, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.sessions) >= self.settings.max_sessions:
            writer.close()
            return
        session = Session(self, reader, writer)
        self.sessions.add(session)
        await session.run()

    # -- what sessions share ---------------------------------------------------------------
    def forget(self, session: Session) -> None:
        self.sessions.discard(session)

    def may_bind(self, who: Principal) -> bool:
        """Room for one more bind of this account."""
        binds = sum(1 for s in self.sessions if s.account_id == who.account.id)
        return binds < self.settings.binds_per_account

    async def admit(self, who: Principal) -> bool:
        """Within the account's --smpp-rate and the key's own rate_per_minute (the same bucket
        the key's HTTP requests take from: on several servers, the one in the database)."""
        bucket = self._buckets.get(who.account.id)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._buckets.clear()
            bucket = self._buckets[who.account.id] = TokenBucket(self.settings.rate)
        if not bucket.take():
            return False
        try:
            await self.keys.limiter.take(who.key)
        except LimitReached:
            return False
        return True

    async def _watch_keys(self) -> None:
        """Every TOKEN_CACHE_SECONDS (as long as HTTP caches a key), read the keys of the bound
        sessions again: a session whose key was revoked, lost its SMPP login or a scope its
        bind needs is closed; the others take the key's new rate and quotas."""
        while True:
            await asyncio.sleep(limits.TOKEN_CACHE_SECONDS)
            bound = [s for s in self.sessions if s.who is not None]
            for account_id in {s.who.account.id for s in bound if s.who is not None}:
                try:
                    keys = {k.id: k for k in await self.gateway.store.list_api_keys(account_id)}
                except StoreError as exc:
                    log.error("smpp: could not read the API keys again: %s", exc)
                    continue
                for session in bound:
                    if session.who is not None and session.account_id == account_id:
                        await session.key_changed(keys.get(session.who.key.id))

    async def _poll_outbox(self) -> None:
        """Every poll_seconds, one query finds which bound accounts have outbox rows pending
        (written by triggers, maybe by another process) and wakes their receiving sessions."""
        while True:
            receivers = [s for s in self.sessions if s.receives]
            if receivers:
                try:
                    pending = await self.store.pending_accounts(
                        sorted({s.account_id for s in receivers if s.account_id is not None}),
                        now_us(),
                    )
                except StoreError as exc:
                    log.error("smpp outbox unavailable: %s", exc)
                    pending = set()
                for session in receivers:
                    if session.account_id in pending:
                        session.wake()
            await asyncio.sleep(self.settings.poll_seconds)

    async def _prune_loop(self) -> None:
        """Expire messages past their validity_period every expiry_check_seconds; forget old
        outbox rows and abandoned parts every hour."""
        next_prune = 0.0
        while True:
            try:
                expired = await self.store.expire(now_us())
                if expired:
                    log.info("smpp: %d messages expired unsent (validity_period)", expired)
            except StoreError as exc:
                log.error("smpp expiry failed: %s", exc)
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + 3600
                await self._prune(now_us())
            await asyncio.sleep(self.settings.expiry_check_seconds)

    async def _prune(self, now: int) -> None:
        try:
            await self.store.prune_parts(now - self.settings.parts_keep_seconds * US)
            await self.store.prune_outbox(now - self.settings.outbox_keep_seconds * US)
        except StoreError as exc:
            log.error("smpp pruning failed: %s", exc)


def listen_socket(host: str, port: int) -> socket.socket:
    """The SMPP listening socket, bound before the app starts, so that a port in use is a clean
    start-up error (the CLI's one line) rather than a failure halfway through the start."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def attach(app_gateway: Gateway, store: object, settings: SmppSettings,
           ssl_context: ssl.SSLContext | None, sock: socket.socket | None = None,
           keys: Keys | None = None) -> SmppServer:  # fmt: skip
    """The SMPP server over the app's gateway and store (SQLite or PostgreSQL); `keys` is the
    native API's key registry, so that a key's rate is one bucket over both doors."""
    from simhive.server.smpp.auth import KeyAuthenticator
    from simhive.server.store.smpp_store import smpp_store as wrap

    keys = keys or Keys(app_gateway.store, app_gateway.clock)
    auth = KeyAuthenticator(app_gateway, keys)
    return SmppServer(app_gateway, wrap(store), auth, settings, ssl_context, sock, keys)
