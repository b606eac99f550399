"""A small HTTP/1.1 client on asyncio streams: what the agent needs to talk to its server.

The agent sends short JSON POSTs to one server, most of them over a few kept-open connections.
aiohttp's client did that too, but importing it cost about 14 MiB of memory per process and its
per-request machinery (tracing hooks, cookie jar, timer objects, multidicts) a large share of
the agent's CPU per SMS. This client does only what the agent uses:

- keep-alive connections per origin (scheme, host, port), reused last-in first-out so a busy
  agent keeps few of them warm; idle ones are closed after `idle_seconds`;
- request bodies of known length; answers framed by Content-Length, chunked, or by the server
  closing the connection;
- TLS through one `ssl.create_default_context()` (certificate and host name verified against
  the system's CAs, as aiohttp's default did);
- one deadline per request, connection set-up included.

Every failure is an `HttpError` (a timeout is also a `TimeoutError`), with words that
agent/serverhint.py recognises; the connection it happened on is closed, never reused. Nothing
is retried here: a POST that may have reached the server is for the caller's back-off to repeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported on first https use: `ssl` loads OpenSSL, about 5 MiB of memory
    import ssl

MAX_HEAD_BYTES = 64 * 1024  # status line and headers of one answer
MAX_BODY_BYTES = 64 * 1024 * 1024  # a pull answer of 500 long messages is well under 1 MiB
IDLE_SECONDS = 15.0  # as aiohttp's client; the server keeps idle connections open longer
MAX_IDLE_PER_ORIGIN = 128  # 64 modems hold one long poll each, plus reports and claims


class HttpError(Exception):
    """The request failed on the way: no connection, a broken or malformed answer."""


class HttpTimeout(HttpError, TimeoutError):
    """No complete answer within the request's deadline."""


class TlsError(HttpError):
    """The TLS handshake failed: an untrusted or expired certificate, a wrong host name."""


class ConnectionLost(HttpError):
    """The server closed the connection before the answer was complete."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytes


@dataclass(slots=True)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default=0.0)

    def usable(self) -> bool:
        # A server that closed an idle connection has sent its FIN, which the loop has read.
        return not self.reader.at_eof() and not self.writer.transport.is_closing()

    def close(self) -> None:
        # abort, not close: nothing is left to flush, and a dead peer must not keep a socket
        transport = self.writer.transport
        transport.abort()
        # asyncio's socket transport keeps a bound method of itself, a reference cycle that
        # only a full run of the cyclic collector frees (CPython gh-100348: close() drops it
        # from 3.12 on, abort() never does). Every repoll and every expired connection left its
        # transport, socket and their dicts behind, about 1.5 KiB each, for as long as the
        # agent ran without such a run: 500 - 1,000 after one batch at 64 modems. Reading has
        # stopped (abort() removed the reader), so the callback is never called again.
        if getattr(transport, "_read_ready_cb", None) is not None:
            transport._read_ready_cb = None  # type: ignore[attr-defined]


def split_url(url: str) -> tuple[Origin, str]:
    """(origin, path with query) of an http(s) URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Origin(parts.scheme, parts.hostname, port), path


class HttpClient:
    """Connection pool and request function; one per agent process. Close it when done."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        idle_seconds: float = IDLE_SECONDS,
        user_agent: str = "simhive-agent",
    ) -> None:
        self._ssl = ssl_context
        self.idle_seconds = idle_seconds
        self._user_agent = user_agent
        self._idle: dict[Origin, list[_Conn]] = {}
        self._urls: dict[str, tuple[Origin, str]] = {}
        self._closed = False
        self.connections_opened = 0  # counter for tests and benchmarks

    async def close(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # made on first https use: loading the CA store costs time and memory
            import ssl

            self._ssl = ssl.create_default_context()
            self._ssl.set_alpn_protocols(["http/1.1"])  # as aiohttp's default context did
        return self._ssl

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        seconds: float,
    ) -> Response:
        if self._closed:
            raise HttpError("the HTTP client is closed")
        target = self._urls.get(url)
        if target is None:
            target = split_url(url)
            if len(self._urls) < 1024:  # the agent calls a handful of fixed URLs
                self._urls[url] = target
        origin, path = target
        lines = [f"{method} {path} HTTP/1.1", f"Host: {origin.netloc}",
                 f"User-Agent: {self._user_agent}", f"Content-Length: {len(body)}"]  # fmt: skip
        if headers:
            lines.extend(f"{k}: {v}" for k, v in headers.items())
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(seconds):
                conn = await self._connection(origin)
                conn.writer.write(head + body if len(body) < 65536 else head)
                if len(body) >= 65536:
                    conn.writer.write(body)
                await conn.writer.drain()
                response, reusable = await _read_response(conn.reader, method)
        except TimeoutError:
            if conn is not None:
                conn.close()
            raise HttpTimeout(
                f"{method} {origin.netloc}{path}: no complete answer within {seconds:g} s"
                " (timed out)"
            ) from None
        except asyncio.IncompleteReadError as exc:
            if conn is not None:
                conn.close()
            raise ConnectionLost(
                f"{method} {origin.netloc}{path}: the server closed the connection mid-answer"
                f" ({len(exc.partial)} bytes of the part being read had come)"
            ) from None
        except HttpError:
            if conn is not None:
                conn.close()
            raise
        except asyncio.LimitOverrunError:
            if conn is not None:
                conn.close()
            msg = f"{method} {origin.netloc}{path}: a line of the answer is too long"
            raise HttpError(msg) from None
        except OSError as exc:  # reset, broken pipe, TLS failure after the handshake
            if conn is not None:
                conn.close()
            raise ConnectionLost(
                f"{method} {origin.netloc}{path}: connection lost: {type(exc).__name__}: {exc}"
            ) from None
        except BaseException:  # cancelled: the answer may still come; the connection is spent
            if conn is not None:
                conn.close()
            raise
        if reusable and not self._closed:
            self._put_back(origin, conn)
        else:
            conn.close()
        return response

    async def _connection(self, origin: Origin) -> _Conn:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: least likely closed by the server
            if conn.usable() and now - conn.idle_since < self.idle_seconds:
                return conn
            conn.close()
        tls = self._ssl_context() if origin.scheme == "https" else None
        try:
            reader, writer = await asyncio.open_connection(
                origin.host, origin.port, ssl=tls, limit=MAX_HEAD_BYTES
            )
        except OSError as exc:
            if tls is not None:
                import ssl  # loaded already: `tls` is an ssl.SSLContext

                if isinstance(exc, ssl.SSLError):  # its own words name the certificate problem
                    raise TlsError(f"TLS with {origin.netloc} failed: {exc}") from None
            raise HttpError(f"cannot connect to {origin.netloc}: {exc}") from None
        self.connections_opened += 1
        return _Conn(reader, writer)

    def _put_back(self, origin: Origin, conn: _Conn) -> None:
        now = time.monotonic()
        conn.idle_since = now
        idle = self._idle.setdefault(origin, [])
        # The oldest sit at the bottom; close those past their idle time or beyond the cap.
        while idle and (now - idle[0].idle_since >= self.idle_seconds
                        or len(idle) >= MAX_IDLE_PER_ORIGIN):  # fmt: skip
            idle.pop(0).close()
        idle.append(conn)


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[Response, bool]:
    """One answer from `reader`; (response, whether the connection may carry another request)."""
    while True:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise HttpError(f"answer head larger than {MAX_HEAD_BYTES} bytes") from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:  # closed before answering: a kept-open connection the server shut
                raise ConnectionLost("the server closed the connection without answering") from None
            raise
        status_line, _, rest = raw[:-4].decode("latin-1").partition("\r\n")
        version, _, tail = status_line.partition(" ")
        code = tail[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise HttpError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in rest.split("\r\n") if rest else ():
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError(f"malformed header line in the answer: {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        if status >= 200 or status == 101:
            break  # 100 Continue and other 1xx interim answers precede the real one
    connection = headers.get("connection", "").lower()
    reusable = "close" not in connection and (version != "HTTP/1.0" or "keep-alive" in connection)
    if method == "HEAD" or status in (204, 304) or status < 200:
        return Response(status, headers, b""), reusable
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Response(status, headers, await _read_chunked(reader)), reusable
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise HttpError(f"bad Content-Length in the answer: {length[:40]!r}")
        return Response(status, headers, await reader.readexactly(int(length))), reusable
    # Neither: the body runs until the server closes the connection.
    body = await reader.read(MAX_BODY_BYTES + 1)
    while body and len(body) <= MAX_BODY_BYTES:
        more = await reader.read(MAX_BODY_BYTES + 1 - len(body))
        if not more:
            break
        body += more
    if len(body) > MAX_BODY_BYTES:
        raise HttpError(f"answer body larger than {MAX_BODY_BYTES} bytes")
    return Response(status, headers, body), False


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()  # chunk extensions are ignored
        try:
            size = int(size_text, 16)
        except ValueError:
            raise HttpError(f"bad chunk size in the answer: {size_text[:20]!r}") from None
        if size == 0:
            break
        total += size
        if total > MAX_BODY_BYTES:
            raise HttpError(f"answer body larger than {MAX_BODY_BYTES} bytes")
        chunk = await reader.readexactly(size + 2)
        if chunk[-2:] != b"\r\n":
            raise HttpError("chunk not followed by CRLF in the answer")
        parts.append(chunk[:-2])
    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailer fields, then the empty line
        pass
    return b"".join(parts)
