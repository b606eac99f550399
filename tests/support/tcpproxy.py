"""A TCP proxy on 127.0.0.1 for fault tests: it forwards, drops or refuses connections on command.

It runs its own asyncio loop in a daemon thread, so synchronous tests (and benchmarks) drive it with
plain method calls:

    with TcpProxy(upstream_port) as proxy:
        agent talks to proxy.port ...
        proxy.refuse()        # cut every open connection; new ones get "connection refused"
        ...
        proxy.accept()        # listen and forward again
        proxy.hold()          # keep connections open but stop moving bytes (a stalled link)
        proxy.release()       # move the held bytes on

Refusing closes the listening socket itself (the client sees ECONNREFUSED, as when the server
host is down), and cut connections are reset (SO_LINGER 0) rather than closed politely, so the
client cannot mistake the cut for a finished answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


class TcpProxy:
    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections_total = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None
        self._thread.start()
        self._call(self._init())
        self._call(self._listen())

    # ---- commands (from any thread) ---------------------------------------------------------

    def refuse(self) -> None:
        """Stop listening and reset every open connection."""
        self._call(self._refuse())

    def accept(self) -> None:
        """Listen again on the same port and forward new connections."""
        self._call(self._listen())

    def drop(self) -> None:
        """Reset every open connection but keep accepting new ones."""
        self._call(self._drop_all())

    def hold(self) -> None:
        """Accept and keep connections, but forward nothing until release()."""
        self._loop.call_soon_threadsafe(self._flow().clear)

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._flow().set)

    @property
    def open_connections(self) -> int:
        return self._call(self._count())

    def close(self) -> None:
        if not self._loop.is_running():
            return
        with contextlib.suppress(Exception):
            self._call(self._refuse())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- inside the loop ----------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)

    async def _init(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()

    def _flow(self) -> asyncio.Event:
        assert self._flowing is not None
        return self._flowing

    async def _count(self) -> int:
        return len(self._writers) // 2

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = int(sock.getsockname()[1])
        self._server = await asyncio.start_server(self._handle, sock=sock)

    async def _refuse(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._drop_all()

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        self._writers.clear()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(client_w)
            return
        self._writers.update((client_w, up_w))
        pumps = [
            asyncio.ensure_future(self._pump(client_r, up_w)),
            asyncio.ensure_future(self._pump(up_r, client_w)),
        ]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for p in pumps:
            p.cancel()
        for w in (client_w, up_w):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                    return
                await self._flow().wait()
                writer.write(data)
                await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: linger on, timeout 0."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
