"""`simhive-server db migrate` and `db copy`, run as the real command line against SQLite files and
fresh PostgreSQL databases."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simhive.server.core.models import IncomingMessage, MessageFilter, NewMessage, ReportEvent
from simhive.server.core.pools import SimOffer
from simhive.server.store.agent_base import DeviceEvent
from simhive.server.store.base import Store
from simhive.server.store.pg import PgStore
from simhive.server.store.pg_schema import LATEST_VERSION
from simhive.server.store.sqlite import SqliteStore
from tests.server._server import cli
from tests.support.pg import PgServer, scratch_database

T0 = 1_700_000_000_000_000


@pytest.fixture
def fresh_db(pg: PgServer) -> Iterator[str]:
    with scratch_database(pg, "simhive_cli") as url:
        yield url


def test_db_migrate_on_both_engines(tmp_path: Path, fresh_db: str) -> None:
    path = tmp_path / "new" / "simhive.sqlite3"
    for _ in range(2):
        out = json.loads(cli("db", "migrate", "--db", str(path)).stdout)
        assert out == {"database": str(path), "version": LATEST_VERSION, "latest": LATEST_VERSION}
    # a URL's password is never printed (this server lets us in without one)
    with_password = fresh_db.replace("postgres@", "postgres:s3cret@")
    for _ in range(2):
        result = cli("db", "migrate", "--db", with_password)
        out = json.loads(result.stdout)
        assert out["version"] == LATEST_VERSION
        assert "s3cret" not in result.stdout + result.stderr
        assert "postgres:***@" in out["database"]


def test_db_migrate_from_the_environment(fresh_db: str) -> None:
    import os
    import subprocess

    from tests.support.procs import console_script

    result = subprocess.run(
        [console_script("simhive-server"), "db", "migrate"], capture_output=True, text=True,
        env={**os.environ, "SIMHIVE_DB": fresh_db}, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout)["database"] == fresh_db


async def _fill(store: Store) -> None:
    """An installation as a running server leaves it: every kind of row."""
    a = await store.create_account("a@example.com", "pw", "tok-a", "Europe/Berlin", T0)
    b = await store.create_account("b@example.com", "pw", "tok-b", "UTC", T0)
    await store.add_account_token(a.id, "tok-a2", T0 + 1, keep=5)
    da = await store.create_device(a.id, "box a", "dev-a", T0)
    db_ = await store.create_device(b.id, "box b", "dev-b", T0)
    hooks: dict[str, object] = {
        "webhook_status": "http://127.0.0.1:9/s",
        "webhook_incoming": "http://127.0.0.1:9/i",
    }
    await store.update_device_settings(da.id, hooks)
    await store.set_device_prefix_rules(da.id, [("0", "+49")])
    pool = await store.create_pool(a.id, "sales", "full", True, T0)
    await store.set_pool_sim(pool.id, da.id, 0, 2)
    pinned = await store.insert_messages(
        [NewMessage(a.id, da.id, f"+4915752982{i:03d}", f"body {i} ü😀", i % 2, i == 3, i)
         for i in range(20)], T0,
    )  # fmt: skip
    await store.insert_messages([NewMessage(a.id, None, "+49170", "pooled", pool_id=pool.id)], T0)
    await store.insert_messages([NewMessage(b.id, db_.id, "+49171", "other")], T0)
    await store.offer_sims(da.id, [SimOffer(0, True, 5, 5), SimOffer(1, False, reason="x")], T0)
    lease, _ = await store.lease_sims(da.id, [SimOffer(0, True, 5, 5)], 5, "L", T0, T0 + 9,
                                      T0 - 1, random.random)  # fmt: skip
    ids = [m.id for m in lease.messages]
    await store.commit_lease(da.id, "L", ids, T0 + 1)
    await store.apply_events(da.id, [ReportEvent(f"e{i}", i, "sent", T0 + 2, parts=((0, 5),))
                                     for i in ids[:2]], T0 + 2)  # fmt: skip
    await store.store_incoming(a.id, da.id, [IncomingMessage("k1", 0, "+4917", "hi")], T0 + 3)
    await store.add_device_events(da.id, [DeviceEvent(T0, "modem", "disconnected")], T0)
    await store.claim_key(a.id, "idem", "fp", T0, 0)
    tag = await store.create_tag(a.id, "t", T0)
    await store.create_contact(a.id, tag, "+49172", "Ann", T0)
    from simhive.server.core.models import NewPaket

    await store.create_paket(NewPaket(a.id, da.id, "p", "paket", 0, (tag,)), T0)
    assert pinned


async def _snapshot(store: Store) -> dict[str, Any]:
    accounts = await store.list_accounts()
    out: dict[str, Any] = {"accounts": accounts, "devices": await store.list_devices()}
    for account in accounts:
        out[f"messages {account.id}"] = await store.list_messages(MessageFilter(account.id))
        out[f"count {account.id}"] = await store.count_messages(MessageFilter(account.id))
        out[f"pools {account.id}"] = await store.list_pools(account.id)
    out["webhooks"] = await store.webhook_rows()
    out["settings"] = [await store.device_agent_settings(d.id) for d in out["devices"]]
    out["events"] = [await store.device_events(d.id) for d in out["devices"]]
    out["sims"] = await store.sims_of([d.id for d in out["devices"]])
    out["token"] = await store.account_by_token_hash("tok-a2")
    return out


async def test_db_copy_moves_an_installation(tmp_path: Path, fresh_db: str) -> None:
    path = tmp_path / "old.sqlite3"
    source = SqliteStore(path)
    await source.open()
    try:
        await _fill(source)
        before = await _snapshot(source)
    finally:
        await source.close()
    result = cli("db", "copy", "--from", f"sqlite:{path}", "--to", fresh_db)
    rows = json.loads(result.stdout)["rows"]
    assert rows["messages"] == 24 and rows["webhook_outbox"] == 3 and rows["pools"] == 1

    target = PgStore(fresh_db)
    await target.open()
    try:
        after = await _snapshot(target)
        assert after == before
        # new rows continue after the copied ids, and the triggers are back on
        [account, _] = before["accounts"]
        device = before["devices"][0]
        [new_id] = await target.insert_messages([NewMessage(account.id, device.id, "+49", "n")], 1)
        assert new_id > max(m.id for m in before[f"messages {account.id}"])
        assert (
            await target.count_messages(MessageFilter(account.id))
            == before[f"count {account.id}"] + 1
        )
        await target.store_incoming(account.id, device.id, [IncomingMessage("k2", 0, "+4", "x")], 9)
        assert len(await target.webhook_rows()) == len(before["webhooks"]) + 1
    finally:
        await target.close()

    # A second copy into the now-filled database is refused, in one line, and changes nothing.
    again = cli("db", "copy", "--from", str(path), "--to", fresh_db, check=False)
    assert again.returncode == 1
    assert again.stderr.strip().startswith("Error: the target database already has data")
    assert "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1


def test_db_copy_errors_are_one_line(tmp_path: Path, fresh_db: str) -> None:
    wrong_way = cli("db", "copy", "--from", fresh_db, "--to", "sqlite:x", check=False)
    assert wrong_way.returncode == 2 and "copy goes from sqlite:PATH" in wrong_way.stderr
    missing = cli("db", "copy", "--from", str(tmp_path / "none.sqlite3"), "--to", fresh_db,
                  check=False)  # fmt: skip
    assert missing.returncode == 1 and "no SQLite database" in missing.stderr
    nobody = "postgresql://postgres@127.0.0.1:1/none"
    down = cli("db", "migrate", "--db", nobody, check=False)
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert down.stderr.startswith("Error: cannot connect to PostgreSQL")
    serve = cli("run", "--db", nobody, "--port", "0", check=False)
    assert serve.returncode == 1 and "Traceback" not in serve.stderr
    assert serve.stderr.strip().splitlines()[-1].startswith("Error: storage error: cannot connect")
