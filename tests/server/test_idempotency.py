"""Idempotency-Key on the compat routes, through a real server process (docs/compat-api.md,
"Retrying safely"): a retried request is stored once and answered the same."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest

from simhive.server.core.idempotency import INVALID_KEY, KEY_REUSED, OUTCOME_UNKNOWN
from simhive.server.core.limits import IDEMPOTENCY_KEY_MAX_CHARS, IDEMPOTENCY_KEY_SECONDS
from tests.server._server import PASSWORD, Server, cli_json, server
from tests.support.procs import ROOT

NUMBER = "+4915752982212"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with server(tmp_path_factory.mktemp("idempotency")) as srv:
        yield srv


def sms(srv: Server, customerid: int, **extra: Any) -> dict[str, str]:
    form = {"token": srv.token, "device_id": str(srv.device_id), "sendto": NUMBER,
            "body": f"order {customerid}", "customerid": str(customerid)}  # fmt: skip
    return {**form, **{k: str(v) for k, v in extra.items()}}


def stored(srv: Server, customerid: int) -> int:
    with sqlite3.connect(f"file:{srv.db}?mode=ro", uri=True) as db:
        row = db.execute("SELECT COUNT(*) FROM messages WHERE customerid = ?", (customerid,))
        return int(row.fetchone()[0])


def execute(srv: Server, sql: str, *args: Any) -> None:
    with sqlite3.connect(srv.db, timeout=10) as db:
        db.execute(sql, args)


async def post_all(
    srv: Server, route: str, form: dict[str, str], key: str | None, times: int = 1
) -> list[bytes]:
    """`times` simultaneous POSTs, each on its own connection; the raw answer bodies."""
    headers = {"Idempotency-Key": key} if key is not None else {}
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> bytes:
            url = f"{srv.url}/getdata/{route}"
            async with session.post(url, data=form, headers=headers) as response:
                assert response.status == 200
                return await response.read()

        return list(await asyncio.gather(*(one() for _ in range(times))))


def post(srv: Server, route: str, form: dict[str, str], key: str | None = None) -> bytes:
    [answer] = asyncio.run(post_all(srv, route, form, key))
    return answer


def lose_the_answer(srv: Server, route: str, form: dict[str, str], key: str) -> None:
    """Send a request and hang up before the answer, as a client whose connection dropped."""
    parts = urlsplit(srv.url)
    assert parts.hostname is not None and parts.port is not None
    body = urlencode(form).encode()
    head = (f"POST /getdata/{route} HTTP/1.1\r\nHost: x\r\nIdempotency-Key: {key}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head.encode() + body)


def error(answer: bytes) -> str:
    data = json.loads(answer)
    assert set(data) == {"error", "message"} and data["error"] == 1, data
    message: str = data["message"]
    return message


def test_without_the_header_nothing_changes(live: Server) -> None:
    first, second = post(live, "addsms", sms(live, 1)), post(live, "addsms", sms(live, 1))
    assert json.loads(first)["sms_id"] != json.loads(second)["sms_id"]
    assert stored(live, 1) == 2


def test_a_retry_gets_the_same_answer_and_stores_nothing(live: Server) -> None:
    first = post(live, "addsms", sms(live, 2), key="order-2")
    assert json.loads(first)["error"] == 0
    for _ in range(3):
        assert post(live, "addsms", sms(live, 2), key="order-2") == first
    assert stored(live, 2) == 1


def test_a_retry_after_a_lost_answer_stores_nothing(live: Server) -> None:
    for customerid in range(10, 30):  # the first attempts' connections drop before any answer
        lose_the_answer(live, "addsms", sms(live, customerid), key=f"lost-{customerid}")
    for customerid in range(10, 30):
        retry = json.loads(post(live, "addsms", sms(live, customerid), key=f"lost-{customerid}"))
        assert retry["error"] == 0, retry
        assert stored(live, customerid) == 1, customerid


def test_simultaneous_duplicates_store_once(live: Server) -> None:
    answers = asyncio.run(post_all(live, "addsms", sms(live, 3), "order-3", times=25))
    assert len(set(answers)) == 1 and json.loads(answers[0])["error"] == 0, set(answers)
    assert stored(live, 3) == 1
    batch = {"token": live.token, "datajson": json.dumps({"smsdata": [
        {"device_id": live.device_id, "sendto": NUMBER, "body": f"b{i}", "customerid": 4}
        for i in range(5)]})}  # fmt: skip
    answers = asyncio.run(post_all(live, "addalotofsms", batch, "batch-4", times=10))
    assert len(set(answers)) == 1 and len(json.loads(answers[0])["sms_ids"]) == 5
    assert stored(live, 4) == 5


def test_a_key_reused_for_another_request_is_refused(live: Server) -> None:
    assert json.loads(post(live, "addsms", sms(live, 5), key="order-5"))["error"] == 0
    assert error(post(live, "addsms", sms(live, 5, body="changed"), key="order-5")) == KEY_REUSED
    assert error(post(live, "savetag", {"token": live.token, "title": "t"}, "order-5")) == (
        KEY_REUSED
    )
    # A fresh token is still the same request: credentials are not part of it.
    token = cli_json("token", "reset", "--db", str(live.db), "--email", live.email)["token"]
    try:
        again = post(live, "addsms", {**sms(live, 5), "token": token}, key="order-5")
        assert json.loads(again)["error"] == 0 and stored(live, 5) == 1
    finally:
        live.token = token  # the tests below use the new one


def test_keys_belong_to_one_account(live: Server) -> None:
    other = cli_json("account", "create", "--db", str(live.db), "--email", "other@example.com",
                     "--password", PASSWORD)  # fmt: skip
    device = cli_json("device", "create", "--db", str(live.db), "--email", "other@example.com",
                      "--title", "x")  # fmt: skip
    mine = post(live, "addsms", sms(live, 6), key="shared")
    form = {**sms(live, 6), "token": other["token"], "device_id": str(device["device_id"])}
    theirs = post(live, "addsms", form, key="shared")
    assert json.loads(mine)["sms_id"] != json.loads(theirs)["sms_id"]
    assert stored(live, 6) == 2


def test_a_refused_request_frees_its_key(live: Server) -> None:
    broken = {k: v for k, v in sms(live, 7).items() if k != "body"}
    assert error(post(live, "addsms", broken, key="order-7")) == "Parameter body is required"
    assert stored(live, 7) == 0
    assert json.loads(post(live, "addsms", sms(live, 7), key="order-7"))["error"] == 0
    assert stored(live, 7) == 1


def test_invalid_keys(live: Server) -> None:
    for key in ("x" * 256, "two words", "ключ"):
        assert error(post(live, "addsms", sms(live, 8), key=key)) == INVALID_KEY
    assert stored(live, 8) == 0


def test_an_interrupted_request_has_an_unknown_outcome(live: Server) -> None:
    first = json.loads(post(live, "addsms", sms(live, 9), key="order-9"))
    assert first["error"] == 0
    # What a server stop between storing and recording the answer leaves behind.
    execute(live, "UPDATE idempotency_keys SET answer = NULL WHERE key = 'order-9'")
    assert error(post(live, "addsms", sms(live, 9), key="order-9")) == OUTCOME_UNKNOWN
    assert stored(live, 9) == 1


def test_keys_expire_after_a_day(live: Server) -> None:
    post(live, "addsms", sms(live, 40), key="order-40")
    execute(live, "UPDATE idempotency_keys SET created = created - 86401000000"
                  " WHERE key = 'order-40'")  # fmt: skip
    post(live, "addsms", sms(live, 40), key="order-40")  # a new request now
    assert stored(live, 40) == 2
    post(live, "addsms", sms(live, 41), key="order-41")  # each claim removes expired keys
    with sqlite3.connect(f"file:{live.db}?mode=ro", uri=True) as db:
        [created] = db.execute("SELECT created FROM idempotency_keys WHERE key = 'order-40'")
    assert created[0] > time.time() * 1e6 - 60e6


def test_routes_that_store_nothing_ignore_the_header(live: Server) -> None:
    form = {"email": live.email, "pass": PASSWORD}
    first, second = post(live, "gettoken", form, "t"), post(live, "gettoken", form, "t")
    assert json.loads(first)["token"] != json.loads(second)["token"]  # never kept in clear
    listing = json.loads(post(live, "getallsms", {"token": live.token, "customerid": "2"}, "t"))
    assert listing["count"] == 1


def test_the_documentation_states_the_real_messages_and_limits() -> None:
    text = (ROOT / "docs" / "compat-api.md").read_text()
    for message in (INVALID_KEY, KEY_REUSED, OUTCOME_UNKNOWN):
        assert f"`{message}`" in text, message
    assert IDEMPOTENCY_KEY_SECONDS == 24 * 3600 and "kept for 24 hours" in text
    assert f"1 to {IDEMPOTENCY_KEY_MAX_CHARS} printable ASCII characters" in text
    assert (
        "| answers kept for an `Idempotency-Key` | 24 hours"
        in (ROOT / "docs" / "configuration.md").read_text()
    )
