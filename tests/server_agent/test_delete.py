"""`device delete` and `account delete` through the real CLI, on the database of a running app:
what goes, what stays, what goes back to its pool, and that nothing is left behind."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from simhive.server.api.agent import AGENT
from simhive.server.core import limits
from simhive.server.core.errors import NotFound
from simhive.server.core.gateway import Outgoing
from tests.server_agent.conftest import HELLO, Env, Servers, eventually
from tests.support.procs import console_script

pytestmark = pytest.mark.integration


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [console_script("simhive-server"), *args]
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60)


def rows(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql, params).fetchall()


async def fill(env: Env) -> dict[str, int]:
    """A device with history of every kind, and a second device that shares a pool with it."""
    await env.agent("hello", HELLO)
    await env.agent("hello", HELLO, token=env.other_token)
    await env.gw.store.update_device_settings(  # a status change then queues a webhook
        env.device_id, {"webhook_status": "http://127.0.0.1:9/status", "webhook_secret": "x" * 20}
    )
    await env.gw.routing.create(env.account, "shared")
    await env.gw.routing.add_sim(env.account, "shared", env.device_id, 0)
    await env.gw.routing.add_sim(env.account, "shared", env.other_device_id, 0)
    sent = await env.send(body="y" * 300)
    lease = await env.agent("pull", {"wait": 0})
    await env.agent("commit", {"lease_id": lease["lease_id"], "ids": [sent]})
    event = {"event_id": f"{sent}:sent", "sms_id": sent, "type": "sent", "sim": 0,
             "parts": [{"index": 0, "reference": 1}, {"index": 1, "reference": 2}]}  # fmt: skip
    await env.agent("report", {"events": [event]})
    msg = {"key": "k1", "sim": 0, "from": "+4917012345", "body": "Hello",
           "received_at": "2026-11-22T04:34:05+00:00", "parts": 1}  # fmt: skip
    incoming = (await env.agent("incoming", {"messages": [msg]}))["accepted"][0]["sms_id"]
    # A shared-pool message the device takes and does not commit (status 2, bound to it).
    [pooled] = await env.gw.send(env.account, Outgoing("+4915700000009", "p", None, pool="shared"))
    taken = await env.agent("pull", {"max": 10, "wait": 0, "sims": [
        {"slot": 0, "ready": True, "room": 5, "pool_room": 5}]})  # fmt: skip
    assert [m["id"] for m in taken["messages"]] == [pooled]
    unsent = await env.send()
    # Waiting in the device's own pool (any SIM of the device), not bound yet.
    [own_pool] = await env.gw.send(env.account, Outgoing("+4915700000008", "o", env.device_id,
                                                         sim=None))  # fmt: skip
    others = await env.send(env.other_device_id, body="other's")
    return {"sent": sent, "unsent": unsent, "incoming": incoming, "pooled": pooled,
            "own_pool": own_pool, "others": others}  # fmt: skip


async def test_device_delete_takes_its_messages_and_hands_taken_pool_work_back(
    servers: Servers,
) -> None:
    servers.lease_seconds = 300  # the taken pool message stays taken until the delete
    env = await servers.start()
    ids = await fill(env)
    db: Path = env.gw.store.path  # type: ignore[attr-defined]
    assert rows(db, "SELECT COUNT(*) FROM webhook_outbox WHERE device_id = ?", env.device_id)[0][0]
    device = str(env.device_id)

    asked = await cli("device", "delete", "--db", str(db), "--device-id", device)
    assert asked.returncode == 1 and asked.stdout == ""
    assert asked.stderr.strip() == (
        f"Error: nothing deleted: this would delete device {device} (box) of agent@example.com "
        "with 2 SIMs and 4 messages (2 not sent yet, 1 received); 1 taken pool messages would "
        "go back to their pool; add --yes to do so"
    )
    assert rows(db, "SELECT COUNT(*) FROM devices WHERE id = ?", env.device_id) == [(1,)]

    done = await cli("device", "delete", "--db", str(db), "--device-id", device, "--yes")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"deleted": {
        "device_id": env.device_id, "title": "box", "sims": 2, "messages": 4,
        "unsent_messages": 2, "incoming_messages": 1, "messages_back_to_pool": 1}}  # fmt: skip

    # The running app: the device's token is refused once its cache of device tokens lets go
    # (the CLI is another process: limits.TOKEN_CACHE_SECONDS, docs/configuration.md), and its
    # messages are gone from the API.
    service = env.app[AGENT]
    later = service.monotonic() + limits.TOKEN_CACHE_SECONDS + 0.1
    service.monotonic = lambda: later
    await env.agent("hello", HELLO, status=401)
    listed = (await env.compat("getallsms"))["smss"]
    assert set(listed) == {str(ids["pooled"]), str(ids["others"])}
    assert listed[str(ids["pooled"])]["status"] == 1  # back in the pool, unbound
    taken = await env.agent("pull", {"max": 10, "wait": 0, "sims": [
        {"slot": 0, "ready": True, "room": 5, "pool_room": 5}]}, token=env.other_token)  # fmt: skip
    # leaves on the other device's SIM, with that device's own message
    assert {m["id"] for m in taken["messages"]} == {ids["pooled"], ids["others"]}
    for table in ("sims", "sim_ready", "pool_sims", "webhook_outbox", "device_events",
                  "applied_events", "incoming_keys"):  # fmt: skip
        assert rows(db, f"SELECT COUNT(*) FROM {table} WHERE device_id = ?", env.device_id) == [
            (0,)
        ], table
    assert rows(db, "SELECT COUNT(*) FROM message_parts") == [(0,)]
    assert rows(db, "SELECT COUNT(*) FROM pools WHERE name = ?", f"device:{device}") == [(0,)]
    gone = await cli("device", "delete", "--db", str(db), "--device-id", device, "--yes")
    assert gone.returncode == 1 and gone.stderr.strip() == f"Error: No device {device}"


async def test_a_device_is_deleted_only_by_its_own_account(env: Env) -> None:
    stranger, _ = await env.gw.create_account("stranger@example.com", "password123")
    with pytest.raises(NotFound):
        await env.gw.delete_device(stranger, env.device_id)
    assert await env.gw.store.device_by_id(env.device_id) is not None


async def test_account_delete_leaves_nothing_behind(env: Env) -> None:
    await fill(env)
    tag = await env.gw.create_tag(env.account, "friends")
    await env.gw.create_contact(env.account, tag, "+4915700000007", "Ann")
    keeper, keeper_token = await env.gw.create_account("keeper@example.com", "password123")
    db: Path = env.gw.store.path  # type: ignore[attr-defined]

    asked = await cli("account", "delete", "--db", str(db), "--email", "agent@example.com")
    assert asked.returncode == 1
    assert "2 devices, 6 messages (4 not sent yet), 1 pool, 1 tag and 1 contact" in asked.stderr
    done = await cli("account", "delete", "--db", str(db), "--email", "agent@example.com", "--yes")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deleted"]["devices"] == 2

    # Every table is empty but for the other account's rows (and the schema's bookkeeping).
    tables = [t for (t,) in rows(db, "SELECT name FROM sqlite_schema WHERE type = 'table'")]
    left = {t: rows(db, f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables
            if t not in ("schema_migrations", "sqlite_sequence", "sqlite_stat1")}  # fmt: skip
    assert {t: n for t, n in left.items() if n} == {"accounts": 1, "account_tokens": 1}

    # The app refuses the deleted account's token (after its few seconds of token cache).
    async def refused() -> bool:
        r = await env.client.get("/getdata/getalldevices", params={"token": env.token})
        return bool((await r.json())["error"] == 1)

    await eventually(refused, "the deleted account's token to be refused")
    r = await env.client.get("/getdata/getalldevices", params={"token": keeper_token})
    assert (await r.json())["error"] == 0 and keeper.email == "keeper@example.com"
