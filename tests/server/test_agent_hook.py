"""Every agent request ends with the AFTER_REQUEST hook, which wakes the webhook sender (a
report or an incoming SMS may just have written outbox rows); compat requests do not run it."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from simhive.server.api.agent import AFTER_REQUEST
from simhive.server.api.compat import GATEWAY
from simhive.server.app import create_app
from simhive.server.background import BACKGROUND
from simhive.server.store.sqlite import SqliteStore


async def test_hook_runs_after_agent_requests_only(tmp_path: Path) -> None:
    app = create_app(SqliteStore(tmp_path / "db.sqlite3"))
    wake = app[AFTER_REQUEST]
    calls: list[str] = []

    def counted() -> None:
        calls.append("agent")
        wake()

    app[AFTER_REQUEST] = counted
    async with TestClient(TestServer(app)) as client:
        gw = app[GATEWAY]
        account, token = await gw.create_account("hook@example.com", "password123")
        device, device_token = await gw.create_device(account, "box")
        sender = app[BACKGROUND].sender
        assert sender is not None

        woken: list[bool] = []
        sender.wake_soon = lambda: woken.append(True)  # type: ignore[method-assign]
        form = {"token": token, "sendto": "+4915752982212", "body": "hi"}
        form["device_id"] = str(device.id)
        r = await client.post("/getdata/addsms", data=form)
        assert (await r.json())["error"] == 0
        assert calls == [] and woken == []

        headers = {"Authorization": f"Bearer {device_token}"}
        r = await client.post("/agent/v1/pull", json={"max": 1, "wait": 0}, headers=headers)
        assert r.status == 200
        assert calls == ["agent"]
        assert woken == [True]

        r = await client.post("/agent/v1/pull", json={}, headers={"Authorization": "Bearer x"})
        assert r.status == 401
        assert calls == ["agent", "agent"]  # failures too: the hook runs whatever the outcome
