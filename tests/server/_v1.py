"""An in-process server with /api/v1 for tests: two accounts, keys of each scope, a device."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simhive.server.api.compat import GATEWAY
from simhive.server.api.v1.http import NATIVE
from simhive.server.app import create_app
from simhive.server.core.gateway import Gateway
from simhive.server.core.models import Account, Device
from simhive.server.core.native import Native
from simhive.server.core.native_models import SCOPES
from simhive.server.store.base import Store
from simhive.server.store.sqlite import SqliteStore

NUMBER = "+4915752982212"


@dataclass
class V1:
    client: TestClient[Any, Any]
    gateway: Gateway
    native: Native
    account: Account
    device: Device
    device_token: str
    compat_token: str
    keys: dict[str, str] = field(default_factory=dict)  # scope -> secret (one scope each)
    other_key: str = ""  # an admin key of another account
    other_device: Device | None = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = "admin",
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        h = dict(headers or {})
        if key is not None:
            h["Authorization"] = f"Bearer {self.keys.get(key, key)}"
        response = await self.client.request(
            method, "/api/v1" + path, json=json, params=params, headers=h
        )
        assert response.content_type == "application/json", await response.text()
        return response.status, await response.json()

    async def ok(self, method: str, path: str, **kw: Any) -> Any:
        status, data = await self.call(method, path, **kw)
        assert status in (200, 201), data
        return data

    async def err(self, method: str, path: str, code: str, **kw: Any) -> dict[str, Any]:
        status, data = await self.call(method, path, **kw)
        assert set(data) == {"error"}, data
        assert set(data["error"]) == {"code", "message", "details"}, data
        assert data["error"]["code"] == code, data
        assert status >= 400
        error: dict[str, Any] = data["error"]
        return error

    async def send(self, **body: Any) -> Any:
        return await self.ok("POST", "/messages", key="send",
                             json={"to": [NUMBER], "text": "hi", **body})  # fmt: skip


@pytest.fixture
async def v1(tmp_path: Path) -> AsyncIterator[V1]:
    async with started(SqliteStore(tmp_path / "db.sqlite3")) as env:
        yield env


@contextlib.asynccontextmanager
async def started(store: Store) -> AsyncIterator[V1]:
    """The app on `store` (tests/store/test_api_v1_pg.py passes a PostgreSQL one)."""
    app = create_app(store)
    async with TestClient(TestServer(app)) as client:
        gw = app[GATEWAY]
        native = app[NATIVE]
        account, compat_token = await gw.create_account("owner@example.com", "password-1")
        device, device_token = await gw.create_device(account, "hall")
        env = V1(client, gw, native, account, device, device_token, compat_token)
        for scope in SCOPES:
            _, env.keys[scope] = await native.keys.create(account, f"{scope} key", [scope])
        other, _ = await gw.create_account("other@example.com", "password-2")
        env.other_device, _ = await gw.create_device(other, "theirs")
        _, env.other_key = await native.keys.create(other, "their admin", ["admin"])
        yield env
