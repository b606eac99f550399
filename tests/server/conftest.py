"""Fixtures for server tests: a fresh SQLite store per test and an in-process aiohttp client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from simhive.server.api.compat import GATEWAY
from simhive.server.app import create_app
from simhive.server.core.gateway import Gateway
from simhive.server.store.sqlite import SqliteStore
from tests.server._v1 import v1  # noqa: F401  (the /api/v1 fixture)

PASSWORD = "correct horse"

# Every way real clients send parameters (compat-api.md sections 1 and 11).
ENCODINGS = ("get", "urlencoded", "multipart", "json", "query_post")


@dataclass
class Api:
    client: TestClient[Any, Any]
    gateway: Gateway
    token: str
    email: str
    account_id: int
    device_id: int
    device_token: str

    async def call(
        self, method: str, params: dict[str, Any], encoding: str = "urlencoded"
    ) -> dict[str, Any]:
        response = await self.raw(method, params, encoding)
        assert response.status == 200, await response.text()
        assert response.content_type == "application/json"
        data: dict[str, Any] = await response.json()
        return data

    async def raw(
        self, method: str, params: dict[str, Any], encoding: str = "urlencoded"
    ) -> aiohttp.ClientResponse:
        url = f"/getdata/{method}"
        text = {k: str(v) for k, v in params.items()}
        if encoding == "get":
            return await self.client.get(url, params=text)
        if encoding == "urlencoded":
            return await self.client.post(url, data=text)
        if encoding == "multipart":
            form = aiohttp.FormData(default_to_multipart=True)
            for key, value in text.items():
                form.add_field(key, value)
            return await self.client.post(url, data=form)
        if encoding == "json":
            return await self.client.post(url, json=params)
        if encoding == "query_post":
            return await self.client.post(url, params=text)
        raise ValueError(encoding)

    async def ok(self, method: str, params: dict[str, Any], encoding: str = "urlencoded") -> Any:
        data = await self.call(method, {"token": self.token, **params}, encoding)
        assert data["error"] == 0, data
        return data

    async def err(self, method: str, params: dict[str, Any], encoding: str = "urlencoded") -> str:
        data = await self.call(method, params, encoding)
        assert data["error"] == 1, data
        assert set(data) == {"error", "message"}, data
        message: str = data["message"]
        return message

    async def send(self, **params: Any) -> int:
        data = await self.ok(
            "addsms",
            {"sendto": "+4915752982212", "body": "hi", "device_id": self.device_id, **params},
        )
        sms_id: int = data["sms_id"]
        return sms_id


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db.sqlite3")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "simhive.sqlite3"


@pytest.fixture
async def api(db_path: Path) -> AsyncIterator[Api]:
    store = SqliteStore(db_path)
    app = create_app(store)
    async with TestClient(TestServer(app)) as client:
        gw = app[GATEWAY]
        account, token = await gw.create_account("owner@example.com", PASSWORD)
        device, device_token = await gw.create_device(account, "hall modem")
        yield Api(client, gw, token, account.email, account.id, device.id, device_token)
