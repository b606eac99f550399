"""Serving the app: read deadlines per request and a cap on open connections.

aiohttp reads a request for as long as the client takes: a client that sends half its headers,
or promises a body and sends part of it, holds a connection (a file descriptor) indefinitely, and
about a thousand such clients exhaust a server under systemd's default file limit.

- Headers must arrive within `header_timeout` seconds of their first byte (for a new connection,
  of its opening), a body within `body_timeout` seconds of its headers. A connection that misses a
  deadline is closed. Trickling bytes does not extend either deadline. Between requests aiohttp's
  keep-alive timeout applies.
- At most `max_connections` are open at once. At the cap the server stops accepting: new
  connections wait in the kernel's listen queue (their connect succeeds, their request is read
  when a slot frees) instead of being refused, so a legitimate client queues rather than fails.
  A waiting connection first gets the slot of an idle keep-alive connection, which is closed for
  it; otherwise it waits for a request to finish or a deadline to expire.

What the guard costs: a deadline is a number on the connection, set and cleared by assignment,
and one timer per site sweeps the open connections every `sweep_interval` (at most 0.5 s),
closing those past their deadline, so a deadline is enforced up to one interval late. A timer
per connection instead (armed on connect, cancelled once the headers are in) made each new
connection cost more than the rest of the guard together: asyncio keeps cancelled timers in its
heap and orders them by a Python comparison (docs/benchmarks.md, "Connection guards").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_runner import BaseSite
from aiohttp.web_server import Server

from simhive.server.core import limits
from simhive.server.startup import bind_error

log = logging.getLogger("simhive.server")

# accept() failures that mean "out of resources right now", not "the socket is broken".
_TRANSIENT_ACCEPT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}
# Descriptors the process needs besides client connections (SQLite, logs, webhook clients).
_SPARE_FILES = 256
HEADERS = "request headers"
BODY = "request body"


def sweep_interval(settings: HttpSettings) -> float:
    """Seconds between deadline sweeps: a tenth of the shorter deadline, at most half a second."""
    return min(0.5, min(settings.header_timeout, settings.body_timeout) / 10)


@dataclass(frozen=True)
class HttpSettings:
    header_timeout: float = limits.HEADER_TIMEOUT_SECONDS
    body_timeout: float = limits.BODY_TIMEOUT_SECONDS
    max_connections: int = limits.MAX_CONNECTIONS
    keepalive_timeout: float = limits.KEEPALIVE_SECONDS


class ConnectionSlots:
    """The open connections, counted against the cap, and the sweep that enforces deadlines."""

    def __init__(self, cap: int, interval: float) -> None:
        self.cap = cap
        self.interval = interval
        self.open: dict[GuardedHandler, None] = {}  # insertion order: oldest first
        self._freed: asyncio.Event = asyncio.Event()
        self.pending = 0  # accepted, still in the TLS handshake
        self._sweeper: asyncio.TimerHandle | None = None

    def full(self) -> bool:
        return len(self.open) + self.pending >= self.cap

    def add(self, handler: GuardedHandler, loop: asyncio.AbstractEventLoop) -> None:
        self.open[handler] = None
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.interval, self._sweep, loop)

    def remove(self, handler: GuardedHandler) -> None:
        if handler in self.open:
            del self.open[handler]
            self._free()

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections whose deadline passed; runs while any connection is open."""
        now = time.monotonic()
        for handler in [h for h in self.open if 0.0 < h.deadline <= now]:
            handler.expire()
        self._sweeper = loop.call_later(self.interval, self._sweep, loop) if self.open else None

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _free(self) -> None:
        self._freed.set()

    async def freed(self) -> None:
        self._freed.clear()
        await self._freed.wait()

    def reclaim_idle(self) -> bool:
        """Close the longest-open connection that waits idle for its next request."""
        for handler in self.open:
            if handler.idle():
                log.info("closing an idle keep-alive connection: %d connections open", self.cap)
                handler.force_close()
                return True
        return False


class GuardedHandler(RequestHandler):
    """aiohttp's HTTP protocol with the header and body deadlines (module docstring)."""

    __slots__ = ("_slots", "_settings", "deadline", "_awaiting", "_body")

    def __init__(self, manager: Server, *, slots: ConnectionSlots, settings: HttpSettings,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(manager, keepalive_timeout=settings.keepalive_timeout, **kwargs)
        self._slots = slots
        self._settings = settings
        # time.monotonic() by which what is awaited must be in (0.0: nothing awaited); the
        # sweep of ConnectionSlots closes the connection after that.
        self.deadline = 0.0
        self._awaiting = HEADERS
        self._body: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._slots.add(self, self._loop)
        super().connection_made(transport)
        self.deadline = time.monotonic() + self._settings.header_timeout
        self._awaiting = HEADERS

    def connection_lost(self, exc: BaseException | None) -> None:
        self.deadline = 0.0
        self._body = None
        self._slots.remove(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        count = self._request_count  # aiohttp counts each request whose headers are complete
        RequestHandler.data_received(self, data)
        if self._request_count != count:  # a request's headers are complete
            body = self._messages[-1][1] if self._messages else None
            if body is None or body.is_eof():
                self._body = None
                self.deadline = 0.0
            else:
                self._body = body
                self.deadline = time.monotonic() + self._settings.body_timeout
                self._awaiting = BODY
        elif self._body is not None:
            if self._body.is_eof():
                self._body = None
                self.deadline = 0.0
        elif not self.deadline and data:  # the first bytes of the next request
            self.deadline = time.monotonic() + self._settings.header_timeout
            self._awaiting = HEADERS

    def idle(self) -> bool:
        """Waiting for a next request of which nothing has arrived yet."""
        waiter = self._waiter
        return (
            waiter is not None
            and not waiter.done()
            and not self.deadline
            and not self._messages
            and self._request_count > 0
        )

    def expire(self) -> None:
        """Close the connection: what it awaited did not arrive in time."""
        self.deadline = 0.0
        seconds = (
            self._settings.header_timeout
            if self._awaiting == HEADERS
            else self._settings.body_timeout
        )
        peer = self.transport.get_extra_info("peername") if self.transport else None
        address = peer[0] if isinstance(peer, tuple) else "?"
        log.info(
            "closed connection from %s: %s not received within %g s",
            address,
            self._awaiting,
            seconds,
        )
        self.force_close()


class GuardedSite(BaseSite):
    """A TCP listener with its own accept loop, so that it can stop accepting at the cap."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        settings: HttpSettings,
        handler_options: dict[str, Any],
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._settings = settings
        self._handler_options = handler_options
        self._sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop  # set by start()
        self.slots = ConnectionSlots(settings.max_connections, sweep_interval(settings))

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    def _factory(self) -> GuardedHandler:
        server = self._runner.server
        assert server is not None
        return GuardedHandler(server, loop=self._loop, slots=self.slots,
                              settings=self._settings, **self._handler_options)  # fmt: skip

    async def start(self) -> None:
        await super().start()
        # Kept: asyncio.get_running_loop() checks the process id, a system call, every time.
        self._loop = asyncio.get_running_loop()
        self._sockets = listen(self._host, self._port, self._backlog)
        if self._port == 0:  # the port the system picked, for `name`
            self._port = int(self._sockets[0].getsockname()[1])
        self._tasks = [asyncio.create_task(self._accept_loop(s)) for s in self._sockets]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self._sockets:
            sock.close()
        self.slots.stop()
        self._runner._unreg_site(self)

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = self._loop
        slots = self.slots
        while True:
            if slots.full():
                # Someone waits in the listen queue: make room for them if an idle keep-alive
                # connection can give its slot, else wait for any connection to end.
                await _readable(loop, sock)
                if slots.full():
                    freed = slots.freed()
                    slots.reclaim_idle()
                    await freed
                continue
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno not in _TRANSIENT_ACCEPT:
                    raise
                log.warning("accept failed (%s); retrying in 1 s", exc.strerror)
                await asyncio.sleep(1.0)
                continue
            # connect_accepted_socket makes the socket non-blocking.
            if self._ssl_context is None:
                await self._connect(conn)
            else:  # the handshake takes round trips: the loop must not wait for it
                slots.pending += 1
                asyncio.create_task(self._connect(conn, pending=True))

    async def _connect(self, conn: socket.socket, pending: bool = False) -> None:
        try:
            await self._loop.connect_accepted_socket(
                self._factory,
                conn,
                ssl=self._ssl_context,
                ssl_handshake_timeout=self._settings.header_timeout if self._ssl_context else None,
            )
        except (OSError, ssl.SSLError, TimeoutError):
            conn.close()  # a failed handshake: the client's problem, the slot is free again
        finally:
            if pending:
                self.slots.pending -= 1
                self.slots._free()


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


def listen(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets for every address `host` resolves to (as asyncio's create_server)."""
    sockets: list[socket.socket] = []
    seen: set[tuple[Any, ...]] = set()
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    try:
        for family, kind, proto, _, address in infos:
            if (family, *address[:2]) in seen:
                continue
            seen.add((family, *address[:2]))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _room_for(connections: int) -> None:
    """Raise the soft open-files limit (up to the hard one) so the cap can be reached."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + _SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            log.warning(
                "open files limited to %d: fewer than --max-connections %d need", new, connections
            )


async def serve(
    app: web.Application,
    host: str,
    port: int,
    settings: HttpSettings,
    *,
    ssl_context: ssl.SSLContext | None = None,
    shutdown_timeout: float = 10.0,
    handler_options: dict[str, Any] | None = None,
    started: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (as web.run_app does).

    `started` is called with the site's URL once it listens. A failed bind raises StartupError.
    """
    _room_for(settings.max_connections)
    options = dict(handler_options or {})
    # handler_cancellation: a long poll whose client disconnected must end, not lease messages
    # to nobody (server/core/agent.py); aiohttp's test server runs handlers this way too.
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=shutdown_timeout, handler_cancellation=True,
        keepalive_timeout=settings.keepalive_timeout, **options,
    )  # fmt: skip
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = GuardedSite(runner, host, port, settings, options, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:  # port in use, no such address, name lookup failed, ...
            raise bind_error(host, port, exc) from None
        if started is not None:
            started(site.name)
        await stop.wait()
    finally:
        await runner.cleanup()
