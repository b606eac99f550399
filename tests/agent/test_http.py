"""The agent's own HTTP client (agent/http.py) against a real aiohttp server and against raw
asyncio servers that answer in ways a well-behaved server would not: chunked bodies, half
answers, connections closed mid-body or before answering, answers that never come."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import ssl
import subprocess
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from simhive.agent.client import AgentClient, ServerAway
from simhive.agent.http import (
    ConnectionLost,
    HttpClient,
    HttpError,
    HttpTimeout,
    TlsError,
    split_url,
)
from simhive.agent.serverhint import server_hint
from tests.support.tls import self_signed

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {"method": request.method, "path": request.path_qs, "len": len(body),
         "auth": request.headers.get("Authorization"), "peer": request.transport.get_extra_info(
             "peername")[1] if request.transport else None},
        status=int(request.query.get("status", "200")),
    )  # fmt: skip


async def streamed(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(50):
        await resp.write(f"{i:04d}".encode() * 100)
    await resp.write_eof()
    return resp


@pytest.fixture
async def aio() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/stream", streamed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def raw_server(handler: Handler) -> tuple[asyncio.Server, str]:
    """A server that reads one request head and then runs `handler` on the connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]  # fmt: skip
                await reader.readexactly(length[0] if length else 0)
                await handler(reader, writer)
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_keep_alive_against_aiohttp(aio: str) -> None:
    async with HttpClient() as http:
        peers = set()
        for i in range(5):
            r = await http.request("POST", f"{aio}/echo?x={i}", body=b"a" * 1000,
                                   headers={"Authorization": "Bearer t"}, seconds=5)  # fmt: skip
            answer = json.loads(r.body)
            assert r.status == 200 and r.headers["content-type"].startswith("application/json")
            assert answer["path"] == f"/echo?x={i}" and answer["len"] == 1000
            assert answer["auth"] == "Bearer t"
            peers.add(answer["peer"])
        # one connection carried all five requests
        assert http.connections_opened == 1 and len(peers) == 1
        # concurrent requests each get a connection; afterwards they wait in the pool
        await asyncio.gather(*(http.request("GET", f"{aio}/echo", seconds=5) for _ in range(4)))
        assert http.connections_opened == 4
        r = await http.request("GET", f"{aio}/echo?status=404", seconds=5)
        assert r.status == 404 and json.loads(r.body)["path"] == "/echo?status=404"
        assert http.connections_opened == 4


async def test_chunked_answer_from_aiohttp_and_a_large_request(aio: str) -> None:
    async with HttpClient() as http:
        r = await http.request("GET", f"{aio}/stream", seconds=5)
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.body == b"".join(f"{i:04d}".encode() * 100 for i in range(50))
        big = await http.request("POST", f"{aio}/echo", body=b"x" * 300_000, seconds=5)
        assert json.loads(big.body)["len"] == 300_000
        assert http.connections_opened == 1


async def test_chunked_with_extensions_trailers_and_an_interim_answer() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                     b"5;ext=1\r\nhello\r\n")  # fmt: skip
        await writer.drain()
        await asyncio.sleep(0.01)  # the rest in a later segment
        writer.write(b"1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")

    server, url = await raw_server(answer)
    async with server, HttpClient() as http:
        for _ in range(2):
            r = await http.request("POST", url + "/x", body=b"{}", seconds=5)
            assert (r.status, r.body, r.headers["x-a"]) == (200, b"hello 0123456789", "1")
        assert http.connections_opened == 1


async def test_body_until_close_and_connection_close_are_not_reused() -> None:
    answers = [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
               b"HTTP/1.0 200 OK\r\n\r\nall of it"]  # fmt: skip

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(answers.pop(0))
        await writer.drain()
        writer.close()

    server, url = await raw_server(answer)
    async with server, HttpClient() as http:
        assert (await http.request("GET", url, seconds=5)).body == b"ok"
        assert (await http.request("GET", url, seconds=5)).body == b"all of it"
        assert http.connections_opened == 2


@pytest.mark.parametrize(
    ("sent", "error", "words"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", ConnectionLost, "mid-answer"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n01234",
            ConnectionLost,
            "mid-answer",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Le", ConnectionLost, "mid-answer"),
        (b"", ConnectionLost, "without answering"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", HttpError, "not an HTTP/1.x answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HttpError, "chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", HttpError, "Content-Length"),
    ],
)
async def test_broken_answers_are_clear_errors(sent: bytes, error: type, words: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(sent)
        await writer.drain()
        writer.close()

    server, url = await raw_server(answer)
    async with server, HttpClient() as http:
        with pytest.raises(error, match=words):
            await http.request("POST", url + "/agent/v1/pull", body=b"{}", seconds=5)
        assert not any(http._idle.values())  # the broken connection is not kept


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # keep-alive answer, then the server drops the idle connection (its idle timeout)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nk")
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.close()

    server, url = await raw_server(answer)
    async with server, HttpClient() as http:
        await http.request("GET", url, seconds=5)
        await asyncio.sleep(0.2)
        assert (await http.request("GET", url, seconds=5)).body == b"k"
        assert http.connections_opened == 2


async def test_deadline_covers_the_whole_answer_and_cancel_drops_the_connection() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01")
        await writer.drain()
        await asyncio.sleep(30)

    server, url = await raw_server(stall)
    async with server, HttpClient() as http:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(HttpTimeout, match="within 0.3 s") as info:
            await http.request("POST", url, body=b"{}", seconds=0.3)
        assert 0.25 < loop.time() - t0 < 2 and isinstance(info.value, TimeoutError)
        task = asyncio.create_task(http.request("POST", url, seconds=5))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not any(http._idle.values())
        # the agent's client turns both into ServerAway, which the sync loops retry
        client = AgentClient(url, "secret-token", http, timeout=0.2)
        with pytest.raises(ServerAway, match="timed out") as away:
            await client.report([])
        assert "secret-token" not in str(away.value)
        assert "does not answer in time" in server_hint(str(away.value), url)
        server.close()


async def test_a_closed_connection_is_freed_without_the_cyclic_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The agent runs with a high collector threshold (agent/runner.py, tune_gc): a transport
    # left in a reference cycle stayed in memory long after its connection ended.
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered.append(1)
        close = b"Connection: close\r\n" if len(answered) == 2 else b""
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n" + close + b"\r\nk")
        await writer.drain()

    answered: list[int] = []
    transports: list[weakref.ref[asyncio.BaseTransport]] = []
    open_connection = asyncio.open_connection

    async def recording(*args: Any, **kwargs: Any) -> tuple[asyncio.StreamReader, Any]:
        reader, writer = await open_connection(*args, **kwargs)
        transports.append(weakref.ref(writer.transport))
        return reader, writer

    monkeypatch.setattr(asyncio, "open_connection", recording)
    server, url = await raw_server(answer)
    gc.disable()
    try:
        async with server:
            http = HttpClient()
            # the first answer keeps its connection in the pool; the second closes it
            await asyncio.gather(*(http.request("GET", url, seconds=5) for _ in range(2)))
            assert len(transports) == 2 and sum(len(c) for c in http._idle.values()) == 1
            await http.close()  # closes the pooled one
            for _ in range(3):  # connection_lost runs from the event loop
                await asyncio.sleep(0)
            assert [ref() for ref in transports] == [None, None]
    finally:
        gc.enable()


async def test_refused_connection_is_server_away_with_the_right_hint() -> None:
    with socket.socket() as sock:  # bound, not listening: refused while we hold it
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with HttpClient() as http:
            with pytest.raises(HttpError, match="cannot connect"):
                await http.request("GET", url, seconds=5)
            with pytest.raises(ServerAway) as away:
                await AgentClient(url, "t", http).hello({}, [])
    assert "nothing accepts connections" in server_hint(str(away.value), url)


async def test_tls_verifies_the_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    url = f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with HttpClient() as http:  # the system's CAs: a self-signed cert is refused
            with pytest.raises(TlsError, match="certificate verify failed") as info:
                await http.request("POST", url + "/echo", seconds=5)
        assert "not trusted here" in server_hint(f"TlsError: {info.value}", url)
        trusting = ssl.create_default_context(cafile=str(cert))
        async with HttpClient(ssl_context=trusting) as http:
            for _ in range(2):
                r = await http.request("POST", url + "/echo", body=b"abc", seconds=5)
                assert json.loads(r.body)["len"] == 3
            assert http.connections_opened == 1
    finally:
        await runner.cleanup()


def test_split_url() -> None:
    origin, path = split_url("https://[::1]:8443/a/b?c=1")
    assert (origin.host, origin.port, origin.netloc) == ("::1", 8443, "[::1]:8443")
    assert path == "/a/b?c=1"
    assert split_url("http://h")[0].netloc == "h" and split_url("http://h")[1] == "/"
    with pytest.raises(ValueError, match="not an http"):
        split_url("ftp://h/")


def test_the_agent_does_not_import_aiohttp() -> None:
    # Everything `simhive-agent run` and `doctor` load; aiohttp alone costs ~14 MiB of memory.
    code = (
        "import sys, simhive.agent.cli, simhive.agent.runner, simhive.agent.backends,"
        " simhive.agent.clitools, simhive.agent.doctor.servercheck;"
        " print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'multidict',"
        " 'yarl')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
