"""No log line carries a token, on any path where the server refuses a request.

Each request below carries a token where a careless or hostile client would put it (query
string, header, request line) and breaks HTTP in one of the ways aiohttp's parser refuses, or is
refused by the server itself. They go over a plain socket to a real server process, once with
aiohttp's C parser and once with its pure-Python one (what a platform without the compiled
extension runs); afterwards the server's whole log must not contain the token.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from simhive.server.api.middleware import mask_query
from simhive.server.logs import parser_error_reason, scrub
from tests.server._server import Server, server

SECRET = "8d1f0c5be2a7436f9a0e4c2b7d6f1e3a"  # token-shaped, must never reach the log
Q = f"/getdata/addsms?token={SECRET}&device_id=1&sendto=%2B4915752982212"

RAW: dict[str, bytes] = {
    "long-url": f"GET {Q}&body={'9' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "long-header-value": f"GET / HTTP/1.1\r\nHost: x\r\nX-Note: token={SECRET}{'a' * 9000}"
    "\r\n\r\n".encode(),
    "long-header-name": f"GET / HTTP/1.1\r\nHost: x\r\n{SECRET}{'a' * 9000}: v\r\n\r\n".encode(),
    "nul-in-header": f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\x00\r\n"
    "\r\n".encode(),
    "bad-header-name": f"GET {Q} HTTP/1.1\r\nHost: x\r\nto ken={SECRET}: v\r\n\r\n".encode(),
    "bad-method": f"G(T {Q} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "bad-version": f"GET {Q} HTTP/1.9x\r\nHost: x\r\n\r\n".encode(),
    "no-version": f"GET {Q}\r\nHost: x\r\n\r\n".encode(),
    "absolute-url-without-host": f"GET http://?token={SECRET} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "space-in-query": f"GET {Q}&body=a b HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "raw-utf8-in-query": f"GET {Q}&body=Привет HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "bare-lf": f"GET {Q} HTTP/1.1\nHost: x\nX-Token: {SECRET}\n\n".encode(),
    "bad-chunk": f"POST {Q} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    f"zz\r\ntoken={SECRET}\r\n0\r\n\r\n".encode(),
    "length-and-chunked": f"POST {Q} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n".encode(),
    "two-lengths": f"POST {Q} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n"
    "\r\nabcd".encode(),
    "too-many-headers": (f"GET {Q} HTTP/1.1\r\nHost: x\r\n" + f"X-A: {SECRET}\r\n" * 200).encode()
    + b"\r\n",
    "unknown-encoding": f"POST {Q} HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\n"
    f"Content-Length: 3\r\n\r\nabc".encode(),
    "garbage-gzip": f"POST {Q} HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\n"
    "not-gzip!".encode(),
    "tls-on-plain-http": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    + SECRET.encode()
    + b"\r\n\r\n",
    "body-too-large": f"POST {Q} HTTP/1.1\r\nHost: x\r\nContent-Length: {5 * 1024 * 1024}\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
    + b"a" * (5 * 1024 * 1024),
    "token-in-path": f"GET /getdata/addsms&token={SECRET} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "token-as-path": f"GET /getdata/{SECRET} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "agent-bad-token": f"POST /agent/v1/hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
    f"{SECRET}\r\nContent-Length: 2\r\n\r\n{{}}".encode(),
    "wrong-login": f"GET /getdata/gettoken?email=docs@example.com&pass={SECRET} HTTP/1.1\r\n"
    "Host: x\r\n\r\n".encode(),
}
# A body promised by Content-Length and cut short by the client closing its side.
SHORT_BODY = f"POST {Q} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\ntoken={SECRET}".encode()


def exchange(address: tuple[str, int], raw: bytes, half_close: bool = False) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        with contextlib.suppress(ConnectionError):
            sock.sendall(raw)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(ConnectionError, TimeoutError):
            while chunk := sock.recv(65536):
                answer += chunk
                if half_close is False and b"\r\n\r\n" in answer:
                    break
        return answer


@pytest.fixture(scope="module", params=["c-parser", "python-parser"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {"AIOHTTP_NO_EXTENSIONS": "1"} if request.param == "python-parser" else {}
    with server(tmp_path_factory.mktemp(request.param), env=env) as srv:
        yield srv


def test_no_refusal_path_logs_the_token(live: Server) -> None:
    parts = urlsplit(live.url)
    assert parts.hostname is not None and parts.port is not None
    address = (parts.hostname, parts.port)
    statuses = {}
    for name, raw in RAW.items():
        answer = exchange(address, raw)
        statuses[name] = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/") else answer[:20]
    exchange(address, SHORT_BODY, half_close=True)
    # Every case was answered (aiohttp's parser: 400; the server: its error shapes).
    assert all(len(status) == 3 for status in statuses.values()), statuses
    assert statuses["long-url"] == b"400" and statuses["body-too-large"] == b"413", statuses
    # The server still serves, then the log is read whole.
    ok = exchange(address, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200"), ok
    log = live.log.read_text(errors="replace")
    assert "refused broken HTTP" in log  # the parser refusals were logged, as one line each
    assert SECRET not in log, [line for line in log.splitlines() if SECRET in line]
    assert SECRET[:12] not in log  # not even the start of it (parser messages cut at 100 bytes)
    assert "Traceback" not in log


def test_reasons_quote_nothing_from_the_request() -> None:
    from aiohttp.http_exceptions import BadHttpMessage, BadStatusLine, InvalidHeader, LineTooLong

    for exc in (
        LineTooLong(f"GET /?token={SECRET}".encode(), 8190),
        InvalidHeader(f"Bearer {SECRET}".encode()),
        BadStatusLine(f"GET /?token={SECRET} HTTP/9"),
        BadHttpMessage(f"Invalid header value char:\n\n  b'token={SECRET}'\n  ^"),
        BadHttpMessage(f"'{SECRET}'"),
    ):
        assert SECRET[:8] not in parser_error_reason(exc), exc
    assert parser_error_reason(BadHttpMessage("Invalid header value char:\n\n b'x'")) == (
        "Invalid header value char"
    )


def test_scrub() -> None:
    assert scrub(f"/getdata/addsms?token={SECRET}&body=x") == "/getdata/addsms?token=***&body=x"
    assert scrub(f"PASS%3D{SECRET}x; Bearer abc.def") == "PASS%3D***; Bearer ***"
    assert scrub(f"id {SECRET} and {SECRET}0") == f"id *** and {SECRET}0"  # 33 digits: not one


def test_api_keys_are_scrubbed() -> None:
    # An /api/v1 key in a query (GET send) or anywhere in a line: `shk_` + 32 hex digits.
    key = "shk_" + SECRET
    assert scrub(f"/api/v1/send?api_key={key}&to=1") == "/api/v1/send?api_key=***&to=1"
    assert scrub(f"refused {key} here") == "refused shk_*** here"
    assert mask_query(f"to=%2B49&api_key={key}") == "to=%2B49&api_key=***"
