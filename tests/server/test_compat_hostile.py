"""Hostile requests against a real `simhive-server` process: never a 5xx, always the error shape.

Hypothesis builds whole HTTP requests (route, verb, query string, body, Content-Type,
Content-Encoding) out of the things that broke or could break a parser: invalid UTF-8, NUL bytes,
huge and fractional numbers, arrays and objects where scalars go, 100,000-deep nesting, duplicated
keys, wrong multipart boundaries and gzip garbage. Requests go over a plain socket client
(http.client) so that nothing on the client side tidies them up. Every answer must be HTTP 200 (or
413 for an oversized body) with the API's JSON shape, and a request answered with error:1 must not
have stored a message.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.client
import json
import socket
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from simhive.server.api.compat import METHODS
from tests.server._server import Server, server

ROUTES = [*METHODS, "nosuchmethod", "addsms/", "ADDSMS"]
KEYS = ["token", "sendto", "body", "device_id", "sim", "timetosend", "customerid", "customerId",
        "urgent", "sms_id", "tag_id", "ctag_id", "tags", "title", "phone", "fullname", "datajson",
        "smsdata", "begindate", "enddate", "timezone", "limit", "offset", "status", "onlycount",
        "orderbydesc", "email", "pass", "time_to_send"]  # fmt: skip
DEEP = 100_000
SECRET = b"5c334c49401d3b602b47a463ca3067d5"  # a token-shaped value that must never be logged


@dataclass
class Live:
    srv: Server

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.srv.url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port

    def request(
        self, verb: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection(*self.host_port, timeout=60)
        try:
            # The server may answer a broken body before it has all of it, and close: the answer
            # is still there to read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.request(verb, target, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            conn.close()

    def stored(self) -> int:
        with sqlite3.connect(f"file:{self.srv.db}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with server(tmp_path_factory.mktemp("hostile")) as srv:
        yield Live(srv)


# -- values ------------------------------------------------------------------------------------

NASTY_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "a\x00b", "+49 157 52982212", "0", "-1", "1.5", "1e400",
                     "NaN", "9" * 5000, "2021-02-30", "null", "[]", "{}", "true", "%", "'--",
                     "Europe/../../etc", "+4915752982212,,,", ",",
                     # lone surrogates: JSON escapes them as \ud800, forms as invalid UTF-8
                     "\ud800", "a\udfffb", "\ud83d"]),
)  # fmt: skip


# aiohttp refuses a request line over 8 KiB at the HTTP level (a plain 400 before the API sees
# it), so the query gets no 5,000-digit numbers.
SHORT_NASTY_TEXT = NASTY_TEXT.filter(lambda v: len(v) < 200)
PAIR_KEYS = st.one_of(st.sampled_from(KEYS), st.text(max_size=6))


def json_values(live_ids: dict[str, Any]) -> st.SearchStrategy[Any]:
    # Built once per set of ids: hypothesis caches what it learns about a strategy object
    # (recursion, emptiness) on that object, so a strategy built anew for every draw costs that
    # analysis each time (a third of the generation time when it was).
    return _json_values(tuple(live_ids.items()))


@functools.cache
def _json_values(live_items: tuple[tuple[str, Any], ...]) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        NASTY_TEXT,
        st.sampled_from([value for _, value in live_items]),
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                    max_size=3),
        max_leaves=6,
    )  # fmt: skip


@functools.cache  # 200 KB each, and quoting it for a form takes a while: made once
def deep_json(kind: str) -> bytes:
    if kind == "array":
        return b"[" * DEEP + b"]" * DEEP
    return b'{"a":' * DEEP + b"1" + b"}" * DEEP


@functools.cache
def deep_form(kind: str) -> bytes:
    """deep_json as a datajson form field."""
    return b"datajson=" + quote(deep_json(kind).decode()).encode()


def json_text(value: Any) -> str:
    # allow_nan: Python writes NaN/Infinity literals, which the stdlib decoder accepts too.
    return json.dumps(value, allow_nan=True)


@st.composite
def pairs(
    draw: st.DrawFn, live_ids: dict[str, Any], in_query: bool = False
) -> list[tuple[str, Any]]:
    keys = PAIR_KEYS
    values = SHORT_NASTY_TEXT if in_query else NASTY_TEXT
    out: list[tuple[str, Any]] = []
    for key in draw(st.lists(keys, max_size=7)):
        if key in live_ids and draw(st.booleans()):
            out.append((key, live_ids[key]))
        else:
            out.append((key, draw(values)))
    # Duplicated keys: which one wins is the parser's business, but it must not crash.
    duplicate = draw(st.booleans())
    if out and duplicate:
        out.append((out[0][0], draw(values)))
    return out


def urlencode_raw(items: list[tuple[str, Any]], mangle: bool) -> bytes:
    # surrogatepass: a lone surrogate goes out as its (invalid UTF-8) bytes, %ED%A0%80
    def q(value: Any) -> str:
        return quote(str(value), safe="", errors="surrogatepass")

    text = "&".join(f"{q(k)}={q(v)}" for k, v in items)
    data = text.encode("utf-8", "surrogatepass")
    # Invalid UTF-8 and NUL bytes, unescaped, where a urlencoded body has only ASCII.
    return data + b"&x=\xff\xfe\x00%ff%00" if mangle else data


@dataclass
class Hostile:
    verb: str
    target: str
    body: bytes | None
    headers: dict[str, str]

    def __repr__(self) -> str:  # keep falsifying examples readable: the deep bodies are huge
        body = self.body if self.body is None or len(self.body) < 300 else self.body[:300] + b"..."
        return f"Hostile({self.verb} {self.target[:300]!r}, {self.headers}, {body!r})"


@st.composite
def hostile(draw: st.DrawFn, live_ids: dict[str, Any]) -> Hostile:
    route = draw(st.sampled_from(ROUTES))
    verb = draw(st.sampled_from(["GET", "POST"]))
    # Most requests start from a valid token or a whole valid addsms, so that the hostile part
    # reaches the checks behind authentication.
    base = draw(st.sampled_from(["none", "token", "token", "addsms", "addsms"]))
    query = {"none": [], "token": [("token", live_ids["token"])], "addsms": list(live_ids.items())}[
        base
    ] + draw(pairs(live_ids, in_query=True))
    target = f"/getdata/{route}"
    if query:
        target += "?" + urlencode_raw(query, False).decode("ascii")
    if draw(st.booleans()):
        # Raw bytes in the query, percent-escaped so that the request line stays valid HTTP.
        target += ("&" if query else "?") + quote(draw(st.binary(max_size=20)), safe="=&")
    kind = draw(st.sampled_from(["none", "form", "multipart", "json", "deep", "dupjson",
                                 "bytes", "datajson", "mixedbatch"]))  # fmt: skip
    body: bytes | None = None
    ctype: str | None = None
    if kind == "form":
        body = urlencode_raw(draw(pairs(live_ids)), draw(st.booleans()))
        ctype = "application/x-www-form-urlencoded"
    elif kind == "multipart":
        boundary = "b0undary"
        parts = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode()
            + str(v).encode("utf-8", "surrogatepass")
            + b"\r\n"
            for k, v in draw(pairs(live_ids))
        )
        body = parts + f"--{boundary}--\r\n".encode()
        declared = draw(st.sampled_from([boundary, "wrong", "", '"b0undary"', boundary[:3]]))
        ctype = f"multipart/form-data; boundary={declared}" if declared else "multipart/form-data"
    elif kind == "json":
        obj = {k: v for k, v in draw(pairs(live_ids))}
        for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
            obj[key] = draw(json_values(live_ids))
        body = json_text(obj).encode("utf-8", "surrogatepass")
        ctype = "application/json"
    elif kind == "deep":
        nesting = draw(st.sampled_from(["array", "object"]))
        body = deep_json(nesting)
        if draw(st.booleans()):  # the same nesting as a datajson form field
            body = deep_form(nesting)
            ctype = "application/x-www-form-urlencoded"
        else:
            ctype = "application/json"
    elif kind == "dupjson":
        token = live_ids["token"]
        body = (f'{{"token":"{token}","token":{json_text(draw(json_values(live_ids)))},'
                f'"smsdata":[],"smsdata":{json_text(draw(json_values(live_ids)))}}}').encode(
            "utf-8", "surrogatepass")  # fmt: skip
        ctype = "application/json"
    elif kind == "mixedbatch":
        # Valid entries with one hostile entry among them: all-or-nothing must hold.
        good = {"sendto": "+4915752982212", "body": "ok", "device_id": live_ids["device_id"]}
        bad = {
            **good,
            **draw(
                st.dictionaries(
                    st.sampled_from(sorted(good) + ["sim", "urgent", "timetosend", "customerid"]),
                    json_values(live_ids),
                    min_size=1,
                    max_size=2,
                )
            ),
        }
        entries: list[Any] = [good] * draw(st.integers(0, 3))
        entries.insert(draw(st.integers(0, len(entries))), bad)
        body = json_text({"token": live_ids["token"], "smsdata": entries}).encode(
            "utf-8", "surrogatepass"
        )
        ctype = "application/json"
    elif kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif kind == "datajson":
        payload = {"token": live_ids["token"],
                   "smsdata": draw(st.lists(st.fixed_dictionaries({}, optional={
                       k: json_values(live_ids) for k in
                       ("sendto", "body", "device_id", "sim", "timetosend", "customerid",
                        "urgent")}), max_size=4))}  # fmt: skip
        text = json_text(payload)
        if draw(st.booleans()):
            body = b"datajson=" + quote(text).encode("ascii")
            ctype = "application/x-www-form-urlencoded"
        else:
            body = text.encode("utf-8", "surrogatepass")
    declared_type = draw(
        st.sampled_from(
            [
                ctype,
                ctype,
                None,
                "text/plain",
                "application/json; charset=utf-16",
                "multipart/form-data",
                "application/x-www-form-urlencoded",
                "garbage/;;==",
                "application/json; boundary=x",
            ]
        )  # fmt: skip
    )
    headers: dict[str, str] = {}
    if declared_type is not None:
        headers["Content-Type"] = declared_type
    encoding = draw(st.sampled_from(["", "", "", "gzip", "gzip-garbage", "deflate-garbage"]))
    if body is not None and encoding == "gzip":
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    elif encoding == "gzip-garbage":
        body = (body or b"") + b"\x1f\x8b not really gzip"
        headers["Content-Encoding"] = "gzip"
    elif encoding == "deflate-garbage":
        body = zlib.compress(body or b"x")[:-3] + b"\xff\xff\xff\xff"
        headers["Content-Encoding"] = "deflate"
    return Hostile(verb, target, body, headers)


def assert_api_shape(status: int, ctype: str, raw: bytes, request: Hostile) -> dict[str, Any]:
    assert status in (200, 413), (status, raw[:500], request)
    assert ctype.startswith("application/json"), (ctype, raw[:500], request)
    data = json.loads(raw)
    assert isinstance(data, dict) and data.get("error") in (0, 1), (data, request)
    if data["error"] == 1:
        assert set(data) == {"error", "message"}, (data, request)
        assert isinstance(data["message"], str) and data["message"].strip(), (data, request)
        assert "Traceback" not in data["message"] and "Internal" not in data["message"], data
    return data


def assert_quiet_log(live: Live, request: object = None, offset: int = 0) -> None:
    """Hostile input is the client's failure: no unexpected-error entry, no traceback logged."""
    with open(live.srv.log, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    for marker in ("unexpected error", "Unhandled exception", "Traceback"):
        assert marker not in text, (marker, request, text[-3000:])


def live_ids(live: Live) -> dict[str, Any]:
    return {"token": live.srv.token, "device_id": live.srv.device_id, "sendto": "+4915752982212",
            "body": "hello", "sim": 0}  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hostile_requests_never_5xx(live: Live, data: st.DataObject) -> None:
    request = data.draw(hostile(live_ids(live)))
    before = live.stored()
    log_size = live.srv.log.stat().st_size
    status, ctype, raw = live.request(request.verb, request.target, request.body, request.headers)
    answer = assert_api_shape(status, ctype, raw, request)
    event(f"{request.target.split('?')[0]} error={answer['error']}")
    if answer["error"] == 1:
        assert live.stored() == before, (answer, request)
    assert_quiet_log(live, request, log_size)


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("route", ["addsms", "addalotofsms", "getallsms"])
def test_deep_nesting_is_a_clear_error(live: Live, route: str, kind: str) -> None:
    target = f"/getdata/{route}?token={live.srv.token}"
    status, ctype, raw = live.request(
        "POST", target, deep_json(kind), {"Content-Type": "application/json"}
    )
    assert (status, json.loads(raw)) == (
        200, {"error": 1, "message": "Invalid JSON body: nested too deeply"}
    )  # fmt: skip
    if route == "addalotofsms":  # the same nesting inside a datajson form field
        form = deep_form(kind)
        status, ctype, raw = live.request(
            "POST", target, form, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert (status, json.loads(raw)) == (
            200, {"error": 1, "message": "Invalid datajson: nested too deeply"}
        )  # fmt: skip


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_undecodable_content_encoding(live: Live, encoding: str) -> None:
    before = live.stored()
    status, _, raw = live.request(
        "POST",
        f"/getdata/addsms?token={live.srv.token}&device_id={live.srv.device_id}"
        "&sendto=%2B4915752982212&body=x",
        b"\x00garbage, not compressed",
        {"Content-Encoding": encoding, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, json.loads(raw)) == (200, {
        "error": 1,
        "message": f"Malformed request body: cannot decode Content-Encoding {encoding}",
    })  # fmt: skip
    assert live.stored() == before
    assert_quiet_log(live)


def test_gzip_body_is_decoded(live: Live) -> None:
    form = f"token={live.srv.token}&device_id={live.srv.device_id}&sendto=%2B4915752982212&body=z"
    status, _, raw = live.request(
        "POST", "/getdata/addsms", gzip.compress(form.encode()),
        {"Content-Encoding": "gzip", "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    data = json.loads(raw)
    assert status == 200 and data["error"] == 0, data


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /getdata/addsms HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\n"
        b"Content-Length: 3\r\n\r\nabc",
        b"POST /getdata/addsms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nab\r\n0\r\n\r\n",
        b"GET /getdata/addsms?body=" + b"9" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        # unencoded UTF-8 in the query, as `curl "...&body=Привет"` sends it; with a token
        b"GET /getdata/addsms?token="
        + SECRET
        + "&body=Привет HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
        b"GET /getdata/addsms?token=" + SECRET + b"&body=a b HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["brotli", "bad-chunk", "long-request-line", "raw-utf8-in-query", "space-in-query"],
)
def test_broken_http_is_a_plain_400(live: Live, raw: bytes) -> None:
    # Not valid HTTP for this server: refused by aiohttp's HTTP layer (docs/compat-api.md) with a
    # 400, never a 5xx, and the server goes on serving. The log gets one warning line for it,
    # not aiohttp's ERROR with a parser traceback (server/logs.py), and not the request line the
    # parser quotes in its message: that holds the token.
    offset = live.srv.log.stat().st_size
    with socket.create_connection(live.host_port, timeout=30) as sock:
        sock.sendall(raw)
        head = sock.recv(200)
    assert head.split(b" ", 2)[1] == b"400", head
    assert_quiet_log(live, raw[:60], offset)
    logged = live.srv.log.read_bytes()[offset:].decode("utf-8", "replace")
    [warning] = [line for line in logged.splitlines() if "WARNING" in line]
    assert "WARNING aiohttp.server: refused broken HTTP from 127.0.0.1 with 400: " in warning
    assert SECRET.decode() not in logged and "GET /getdata" not in warning, logged
    assert all(" INFO " in line or " WARNING " in line for line in logged.splitlines()), logged
    status, _, raw_answer = live.request("GET", f"/getdata/getalldevices?token={live.srv.token}",
                                         None, {})  # fmt: skip
    assert status == 200 and json.loads(raw_answer)["error"] == 0
