"""Each parameter value is percent-decoded exactly once, by GET and POST alike, through a real
server process: what a client encoded once is stored as the client meant it."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import pytest

from tests.server._server import Server, server

pytestmark = pytest.mark.integration

# Values whose text a second decode would change (or a lossy one would mangle).
VALUES = [
    "100%41 off",  # was stored as "100A off" by GET
    "x%2Fy",  # was "x/y"
    "50%de réduction",  # was "50\ufffd réduction"
    "%25",
    "100%",
    "%zz and %",
    "1+1=2",
    "a %2B b",
    "Grüße é 😀",
    "%C3%A9 is é",
    "tab\tand\nnewline",
]
# A query string or form body as sloppy clients write it -> the value stored.
RAW = [
    ("100%25", "100%"),
    ("a+b", "a b"),
    ("a%2Bb", "a+b"),
    ("%C3%A9", "é"),
    ("%c3%a9t%C3%A9", "été"),
    ("x%252Fy", "x%2Fy"),
    # A `%` the client forgot to encode: its escape is not UTF-8, so it is kept as written.
    ("50%de+r%C3%A9duction", "50%de réduction"),
    ("caf%E9", "caf%E9"),  # Latin-1 from a legacy client: kept, not replaced
    ("%C3%28", "%C3("),  # a lead byte without its continuation
    ("%F0%9F%98", "%F0%9F%98"),  # an emoji cut short
    ("100%", "100%"),
    ("%zz%4", "%zz%4"),
    ("%E2%82%AC%FF%41", "€%FFA"),
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp: Path = tmp_path_factory.mktemp("query")
    with server(tmp) as s:
        yield s


def _request(srv: Server, method: str, path: str, body: str | None = None) -> dict[str, Any]:
    url = urlsplit(srv.url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        # http.client sends the path as given: no second encoding on the client side either.
        conn.request(method, path, body=body.encode("ascii") if body else None, headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        data: dict[str, Any] = json.loads(response.read())
        return data
    finally:
        conn.close()


def _send(srv: Server, verb: str, encoded_body: str) -> str:
    """addsms with `body=<encoded_body>` by GET (query) or POST (form); the stored body."""
    form = f"token={srv.token}&device_id={srv.device_id}&sendto=%2B4915752982212"
    form += f"&body={encoded_body}"
    if verb == "GET":
        sent = _request(srv, "GET", f"/getdata/addsms?{form}")
    else:
        sent = _request(srv, "POST", "/getdata/addsms", form)
    assert sent["error"] == 0, sent
    sms_id = sent["sms_id"]
    found = _request(srv, "GET", f"/getdata/getallsms?token={srv.token}&orderbydesc=1&limit=1")
    stored: str = found["smss"][str(sms_id)]["body"]
    return stored


@pytest.mark.parametrize("verb", ["GET", "POST"])
@pytest.mark.parametrize("value", VALUES)
def test_value_encoded_once_is_stored_as_meant(srv: Server, verb: str, value: str) -> None:
    assert _send(srv, verb, quote(value, safe="")) == value
    assert _send(srv, verb, quote_plus(value, safe="")) == value  # spaces as `+`


@pytest.mark.parametrize("verb", ["GET", "POST"])
@pytest.mark.parametrize(("raw", "stored"), RAW)
def test_raw_query_text_is_decoded_once(srv: Server, verb: str, raw: str, stored: str) -> None:
    assert _send(srv, verb, raw) == stored


@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_keys_are_decoded_once_too(srv: Server, verb: str) -> None:
    # `%62ody` is `body` after one decode; `%2562ody` is the key `%62ody`, an unknown key.
    form = f"token={srv.token}&device_id={srv.device_id}&sendto=%2B4915752982212"
    once = f"{form}&%62ody=hello"
    twice = f"{form}&body=kept&%2562ody=ignored"
    for query, expected in ((once, "hello"), (twice, "kept")):
        if verb == "GET":
            sent = _request(srv, "GET", f"/getdata/addsms?{query}")
        else:
            sent = _request(srv, "POST", "/getdata/addsms", query)
        assert sent["error"] == 0, sent
        found = _request(srv, "GET", f"/getdata/getallsms?token={srv.token}&orderbydesc=1")
        assert found["smss"][str(sent["sms_id"])]["body"] == expected
