"""The SMPP session suite (tests/smpp/test_session.py) runs again with the SMPP server over the
PostgreSQL store (server/store/pg_smpp.py): binds, submits with receipts written in the
message's transaction, concatenated parts, query/cancel, the receipt and MO outbox filled by the
plpgsql triggers, validity expiry; each test in a schema of its own."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

import tests.smpp.test_keys
import tests.smpp.test_session
from simhive.server.core.dates import now_us
from simhive.server.core.gateway import Gateway
from simhive.server.core.models import NewMessage
from simhive.server.smpp.pdu import Cmd
from simhive.server.smpp.server import attach
from simhive.server.store import pg_schema
from simhive.server.store.pg import PgStore
from simhive.server.store.pg_smpp import PgSmppStore
from simhive.server.store.sqlite_smpp import PartsTaken
from tests.smpp.conftest import TEST_SETTINGS, RawClient, Smpp, start_smpp, stop_smpp
from tests.smpp.conftest import cheap_scrypt as cheap_scrypt  # an autouse fixture there
from tests.smpp.test_session import _wait
from tests.store import schema_pool

for _suite in (tests.smpp.test_session, tests.smpp.test_keys):
    globals().update(
        {k: v for k, v in vars(_suite).items() if k.startswith("test_") and "migration" not in k}
    )
from tests.smpp.test_keys import quick_key_watch as quick_key_watch  # noqa: E402  (a fixture)


@pytest.fixture
async def schema(pg_url: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """An empty migrated schema from the pool (a new, unmigrated one for `fresh_schema`)."""
    async with schema_pool.lease(pg_url, fresh=schema_pool.wants_fresh(request)) as name:
        yield name


@pytest.fixture
def make_smpp(tmp_path: Path, pg_url: str, schema: str) -> Callable[..., object]:
    """A server with other settings: `await make_smpp(rate=2)`; stopped by the test."""

    async def make(**changes: object) -> Smpp:
        settings = dataclasses.replace(TEST_SETTINGS, **changes)  # type: ignore[arg-type]
        return await start_smpp(tmp_path, settings, store=PgStore(pg_url, schema=schema))

    return make


@pytest.fixture
async def smpp(tmp_path: Path, pg_url: str, schema: str) -> AsyncIterator[Smpp]:
    started = await start_smpp(tmp_path, store=PgStore(pg_url, schema=schema))
    try:
        yield started
    finally:
        await stop_smpp(started)


async def test_the_server_runs_on_the_postgresql_smpp_store(smpp: Smpp) -> None:
    assert isinstance(smpp.smpp_store, PgSmppStore)


async def test_a_set_completed_twice_at_once_is_stored_once(smpp: Smpp) -> None:
    # Two submits of the last part racing: both see the set complete, one message is stored
    # with its parts linked, the other's follow-up finds them taken and its message is undone.
    store, account = smpp.smpp_store, smpp.account.id
    assert isinstance(store, PgSmppStore) and isinstance(smpp.store, PgStore)
    now = now_us()
    await store.add_part(account, "k", 1, 2, "Hello ", 0, "crm", "+4915752982212", now)
    for _ in range(2):
        _, parts = await store.add_part(account, "k", 2, 2, "world", 0, "crm", "+49157", now)
        assert parts is not None and [p.text for p in parts] == ["Hello ", "world"]
    device = await smpp.store.create_device(account, "d", "device-token-hash", now)
    message = NewMessage(account, device.id, "+4915752982212", "Hello world")
    link = store.link_parts(account, "k", 2)
    results = await asyncio.gather(
        *(smpp.store.insert_messages([message], now, link) for _ in range(2)),
        return_exceptions=True,
    )
    stored = [r for r in results if isinstance(r, list)]
    assert len(stored) == 1 and sum(isinstance(r, PartsTaken) for r in results) == 1
    (sms_id,) = stored[0]
    rows = await smpp.store._all("SELECT DISTINCT sms_id FROM smpp_submits WHERE concat_key = 'k'")
    assert [r[0] for r in rows] == [sms_id]
    count = await smpp.store._all("SELECT COUNT(*) FROM messages WHERE body = 'Hello world'")
    assert count[0][0] == 1


async def test_parts_completing_a_set_at_once_report_it_once(smpp: Smpp) -> None:
    # The last two parts arriving together on two binds: exactly one of them completes the set
    # (without the per-set lock each transaction misses the other's part and neither does).
    store, account = smpp.smpp_store, smpp.account.id
    now = now_us()
    for n in range(10):
        key = f"set{n}"
        results = await asyncio.gather(
            *(store.add_part(account, key, seq, 2, f"p{seq}", 0, "crm", "+49157", now)
              for seq in (1, 2))
        )  # fmt: skip
        assert sum(parts is not None for _, parts in results) == 1, results


async def test_two_servers_on_one_database_deliver_each_row_once(
    smpp: Smpp, pg_url: str, schema: str
) -> None:
    # One ESME bound to two servers over one schema: every incoming SMS and receipt is pushed
    # by one of them only, because a server claims a row before its deliver_sm.
    other_store = PgStore(pg_url, schema=schema)
    await other_store.open()
    other = attach(Gateway(other_store), other_store, TEST_SETTINGS, None)
    await other.start()
    clients = []
    try:
        for port in (smpp.server.port, other.port):
            client = await RawClient.open(port)
            clients.append(client)
            answer = await client.call(
                Cmd.BIND_RECEIVER, system_id=smpp.system_id, password=smpp.secret
            )
            assert answer.status == 0
        got: list[list[int]] = [[], []]

        async def drain(index: int) -> None:
            while True:
                pdu = await clients[index].deliver(wait=30)
                got[index].append(int(pdu.octets("short_message").decode()))
                await clients[index].ack(pdu)

        readers = [asyncio.create_task(drain(i)) for i in (0, 1)]
        device, _ = await smpp.gateway.create_device(smpp.account, "box")
        n = 60
        for i in range(n):
            await smpp.sql(
                "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim,"
                " status, created, due, status_changed) VALUES (?, ?, 'in', ?, ?, 0, 5, 1, 1, 1)",
                (smpp.account.id, device.id, "+4915752982212", str(i)),
            )
        await _wait(lambda: smpp.smpp_store.outbox_rows(smpp.account.id),
                    lambda rows: len(rows) == n and all(r["state"] == "delivered" for r in rows),
                    )  # fmt: skip
        await asyncio.sleep(0.3)  # a duplicate would arrive now
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        everything = got[0] + got[1]
        assert sorted(everything) == list(range(n)), (len(everything), got)
        assert got[0] and got[1]  # both servers took part
    finally:
        for client in clients:
            await client.close()
        await other.close()
        await other_store.close()


@pytest.mark.fresh_schema
async def test_migration_20_turns_smpp_credentials_into_keys_on_postgresql(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": schema})
    try:
        with monkeypatch.context() as patch:  # the schema as it was before migration 20
            patch.setattr(pg_schema, "MIGRATIONS", [m for m in pg_schema.MIGRATIONS if m[0] < 20])
            assert await pg_schema.migrate(conn) == 19
        await conn.execute(
            "INSERT INTO accounts(id, email, password_hash, created) VALUES (1, 'a@b.c', 'x', 1)"
        )
        await conn.execute("INSERT INTO smpp_credentials VALUES ('crm1', 1, 'scrypt$h', 'otp', 5)")
        assert await pg_schema.migrate(conn) == pg_schema.MIGRATIONS[-1][0]
    finally:
        await conn.close()
    store = PgStore(pg_url, schema=schema)
    await store.open()
    try:
        found = await store.smpp_login("CRM1")
        assert found is not None
        login, account = found
        assert account.id == 1 and login.key.scopes == ("send", "read")
        assert (login.key.smpp_system_id, login.key.smpp_pool) == ("crm1", "otp")
        assert login.key.rate_per_minute == 6000 and login.password_hash == "scrypt$h"
    finally:
        await store.close()
