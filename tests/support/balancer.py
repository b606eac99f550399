"""A TCP load balancer on 127.0.0.1: the reverse proxy in front of several servers
(docs/scaling.md), for tests and benchmarks.

Each new connection goes to the next upstream port in turn; an upstream that refuses the
connection (its server is down) is skipped for that connection and the next one is tried, as a
proxy's health check would. Bytes are forwarded both ways until either side closes; when an
upstream dies, its connections are reset, and the client reconnects through the balancer to a
live server. Runs its own asyncio loop in a daemon thread, so synchronous code uses it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Sequence
from types import TracebackType


class Balancer:
    def __init__(self, upstream_ports: Sequence[int]) -> None:
        self.upstreams = list(upstream_ports)
        self.port = 0
        self.connections: dict[int, int] = dict.fromkeys(self.upstreams, 0)
        self._turn = itertools.cycle(range(len(self.upstreams)))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server = asyncio.run_coroutine_threadsafe(
            self._listen(), self._loop
        ).result(10)

    async def _listen(self) -> asyncio.Server:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        return server

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.upstreams)):
            port = self.upstreams[next(self._turn)]
            with contextlib.suppress(OSError):
                streams = await asyncio.open_connection("127.0.0.1", port)
                self.connections[port] += 1
                return streams
        return None

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:  # every server down: the client sees its connection closed
            client_w.close()
            return
        up_r, up_w = upstream
        await asyncio.gather(self._pump(client_r, up_w), self._pump(up_r, client_w))

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> Balancer:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
