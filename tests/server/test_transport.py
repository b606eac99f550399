"""Transport details: the h2c upgrade offer with a body (docs/compat-api.md), masked access logs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlencode

from simhive.server.api.middleware import mask_query
from tests.server.conftest import Api


async def _raw_http(api: Api, request: bytes) -> tuple[int, bytes]:
    port = api.client.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await asyncio.wait_for(reader.readexactly(length), 30)
    writer.close()
    await writer.wait_closed()
    return status, body


async def test_h2c_upgrade_offer_keeps_the_post_body(api: Api) -> None:
    # What the JDK HttpClient sends over plain HTTP: an HTTP/2 upgrade offer with a POST body.
    body = urlencode(
        {
            "token": api.token,
            "sendto": "+4915752982212",
            "body": "via java",
            "device_id": api.device_id,
        }  # fmt: skip
    ).encode()
    request = (
        b"POST /getdata/addsms HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Connection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\n"
        b"HTTP2-Settings: AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"User-Agent: Java-http-client/17.0.8\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    status, raw = await _raw_http(api, request)
    assert status == 200
    data = json.loads(raw)
    assert data["error"] == 0, data
    item = (await api.ok("getallsms", {}, "get"))["smss"][str(data["sms_id"])]
    assert item["body"] == "via java"


def test_mask_query() -> None:
    masked = mask_query("token=abc&sendto=%2B49157&pass=pw&datajson=%7B%7D&Token=x&device_id=1")
    assert "abc" not in masked and "pw" not in masked and "%7B" not in masked
    assert masked == "token=***&sendto=%2B49157&pass=***&datajson=***&Token=***&device_id=1"
    assert mask_query("") == ""
    # an encoded key is still recognised; a key without "=" is masked too
    assert mask_query("%74oken=abc&pa%73s&x=1") == "%74oken=***&pa%73s=***&x=1"


async def test_access_log_masks_secrets(tmp_path: Path) -> None:
    import io

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from simhive.server.api.middleware import MaskingAccessLogger
    from simhive.server.app import RUNNER_OPTIONS, create_app

    out = io.StringIO()
    MaskingAccessLogger.sink.stream = out
    try:
        app: web.Application = create_app(tmp_path / "log.sqlite3")
        server = TestServer(app)
        await server.start_server(**RUNNER_OPTIONS)
        async with TestClient(server) as client:
            response = await client.get(
                "/getdata/getalldevices",
                params={"token": "deadbeef" * 4, "pass": "hunter2", "datajson": '{"token":"x"}'},
            )
            assert response.status == 200
            await asyncio.sleep(0)
    finally:
        MaskingAccessLogger.sink.flush()
        MaskingAccessLogger.sink.stream = None
    text = out.getvalue()
    assert "GET /getdata/getalldevices?" in text, "no access log line written"
    assert "deadbeef" not in text and "hunter2" not in text and '"token"' not in text
    assert "token=***" in text and "pass=***" in text and "datajson=***" in text


async def test_locked_database_answers_503_then_recovers(tmp_path: Path) -> None:
    import sqlite3

    from aiohttp.test_utils import TestClient, TestServer

    from simhive.server.api.compat import GATEWAY
    from simhive.server.app import create_app
    from simhive.server.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "locked.sqlite3", busy_timeout_ms=200)
    app = create_app(store)
    async with TestClient(TestServer(app)) as client:
        gw = app[GATEWAY]
        account, token = await gw.create_account("lock@example.com", "password123")
        device, _ = await gw.create_device(account, "d")
        form = {"token": token, "sendto": "+4915752982212", "body": "x",
                "device_id": str(device.id)}  # fmt: skip
        blocker = sqlite3.connect(store.path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # e.g. a backup or a stuck admin process
        try:
            r = await client.post("/getdata/addsms", data=form)
            assert r.status == 503
            assert await r.json() == {"error": 1, "message": "Storage unavailable, try again"}
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        r = await client.post("/getdata/addsms", data=form)
        assert r.status == 200 and (await r.json())["error"] == 0


async def test_expect_100_continue(api: Api) -> None:
    # PHP's curl sends `Expect: 100-continue` for POST bodies over 1 KiB (a datajson batch).
    batch = {
        "token": api.token,
        "smsdata": [{"sendto": "+4915752982212", "body": "x" * 100, "device_id": api.device_id}]
        * 50,
    }
    response = await api.client.post(
        "/getdata/addalotofsms", data={"datajson": json.dumps(batch)}, expect100=True
    )
    assert response.status == 200
    data = await response.json()
    assert data["error"] == 0 and len(data["sms_ids"]) == 50
