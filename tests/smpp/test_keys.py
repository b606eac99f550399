"""SMPP credentials are API keys, in-process: scopes per bind mode, revocation (new binds and
bound sessions), last use, the key's rate, and the account's and key's quotas as
ESME_RTHROTTLED with nothing stored. tests/store/test_smpp_pg.py runs these on PostgreSQL too."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from simhive.server.core import limits, quotas, security
from simhive.server.core.keys import new_smpp_password
from simhive.server.core.models import MessageFilter
from simhive.server.core.native_models import ApiKey
from simhive.server.smpp.pdu import Cmd, Status
from simhive.server.store import sqlite_schema
from simhive.server.store.sqlite import SqliteStore
from tests.smpp.conftest import RawClient, Smpp
from tests.smpp.test_session import TO, submit


async def _key(smpp: Smpp, name: str, scopes: list[str], **options: object) -> tuple[ApiKey, str]:
    """A key with an SMPP login named like the key; returns it and its SMPP password."""
    password = new_smpp_password()
    key, _ = await smpp.server.keys.create(
        smpp.account, name, scopes, smpp_system_id=name, smpp_password=password,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip
    return key, password


async def _bind(smpp: Smpp, command: int, system_id: str, password: str) -> tuple[int, RawClient]:
    client = await smpp.connect()
    answer = await client.call(command, system_id=system_id, password=password)
    return answer.status, client


async def _stored(smpp: Smpp) -> int:
    return await smpp.gateway.count_messages(MessageFilter(account_id=smpp.account.id))


async def test_each_bind_needs_its_scope(smpp: Smpp) -> None:
    _, reader = await _key(smpp, "reader", ["read"])
    _, sender = await _key(smpp, "sender", ["send"])
    _, admin = await _key(smpp, "admin", ["admin"])  # admin holds every scope
    cases = [
        ("reader", reader, Cmd.BIND_RECEIVER, Status.ROK),
        ("reader", reader, Cmd.BIND_TRANSMITTER, Status.RBINDFAIL),
        ("reader", reader, Cmd.BIND_TRANSCEIVER, Status.RBINDFAIL),
        ("sender", sender, Cmd.BIND_TRANSMITTER, Status.ROK),
        ("sender", sender, Cmd.BIND_RECEIVER, Status.RBINDFAIL),
        ("sender", sender, Cmd.BIND_TRANSCEIVER, Status.RBINDFAIL),
        ("admin", admin, Cmd.BIND_TRANSCEIVER, Status.ROK),
    ]
    for system_id, password, command, wanted in cases:
        status, _ = await _bind(smpp, command, system_id, password)
        assert status == wanted, (system_id, hex(command))


async def test_a_key_without_an_smpp_login_does_not_bind(smpp: Smpp) -> None:
    key, secret = await smpp.server.keys.create(smpp.account, "http only", ["send", "read"])
    assert key.smpp_system_id is None
    for system_id in (key.prefix, "http only"):
        status, _ = await _bind(smpp, Cmd.BIND_TRANSCEIVER, system_id, secret)
        assert status == Status.RINVPASWD


@pytest.fixture
def quick_key_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server reads bound keys again every TOKEN_CACHE_SECONDS (2 s); 0.1 s here."""
    monkeypatch.setattr(limits, "TOKEN_CACHE_SECONDS", 0.1)


async def test_a_revoked_key_binds_no_more_and_loses_its_sessions(
    quick_key_watch: None, smpp: Smpp
) -> None:
    client = await smpp.bound()
    status, _ = await submit(client)
    assert status == 0
    await smpp.server.keys.revoke(smpp.account, smpp.key.id)
    assert await client.closed(wait=5)  # the bound session is closed
    status, _ = await _bind(smpp, Cmd.BIND_TRANSCEIVER, smpp.system_id, smpp.password)
    assert status == Status.RINVPASWD
    status, _ = await _bind(smpp, Cmd.BIND_TRANSMITTER, smpp.system_id, smpp.secret)
    assert status == Status.RINVPASWD
    assert await _stored(smpp) == 1
    # A new key may take the revoked one's system_id (a new password for the same client).
    password = new_smpp_password()
    await smpp.server.keys.create(smpp.account, "crm again", ["send"], smpp_system_id="crm",
                                  smpp_password=password)  # fmt: skip
    status, _ = await _bind(smpp, Cmd.BIND_TRANSMITTER, "crm", password)
    assert status == 0


async def test_a_bind_marks_the_key_used(smpp: Smpp) -> None:
    key, password = await _key(smpp, "fresh", ["send"])
    assert key.last_used is None
    status, _ = await _bind(smpp, Cmd.BIND_TRANSMITTER, "fresh", password)
    assert status == 0
    (after,) = [k for k in await smpp.gateway.store.list_api_keys(smpp.account.id)
                if k.id == key.id]  # fmt: skip
    assert after.last_used is not None


async def test_the_keys_rate_throttles_submits(smpp: Smpp) -> None:
    _, password = await _key(smpp, "slow", ["send"], rate_per_minute=2)
    _, client = await _bind(smpp, Cmd.BIND_TRANSMITTER, "slow", password)
    statuses = [(await submit(client))[0] for _ in range(4)]
    assert statuses == [0, 0, Status.RTHROTTLED, Status.RTHROTTLED]
    assert await _stored(smpp) == 2


async def test_the_keys_daily_quota_throttles_and_stores_nothing(smpp: Smpp) -> None:
    _, password = await _key(smpp, "metered", ["send"], daily_quota=2)
    _, client = await _bind(smpp, Cmd.BIND_TRANSMITTER, "metered", password)
    statuses = [(await submit(client, registered_delivery=1))[0] for _ in range(3)]
    assert statuses == [0, 0, Status.RTHROTTLED]
    assert await _stored(smpp) == 2
    # Nothing of the refused submit stays: no message, no receipt request.
    rows = await smpp.store._all("SELECT COUNT(*) FROM smpp_submits")
    assert rows[0][0] == 2
    # The sends were counted like /api/v1 sends: on the key and on the account.
    key = await _only_key(smpp, "metered")
    for meter in quotas.meters(smpp.account.id, key, smpp.server.requests.clock()):
        (used,) = await smpp.gateway.store.quota_used(meter.account_id, meter.key_id,
                                                      [meter.period])  # fmt: skip
        assert used == 2, meter
    # Other keys of the account are not held by this key's quota.
    status, _ = await submit(await smpp.bound())
    assert status == 0


async def test_the_accounts_quota_throttles_every_key(smpp: Smpp) -> None:
    await smpp.gateway.store.set_account_quota(smpp.account.id, 1, None)
    client = await smpp.bound()
    assert (await submit(client))[0] == 0
    assert (await submit(client))[0] == Status.RTHROTTLED
    # submit_multi: each refused address comes back in unsuccess_sme with the status.
    answer = await client.call(
        Cmd.SUBMIT_MULTI, dest_address=[(1, 1, 1, TO.lstrip("+"))], short_message=b"hi"
    )
    assert answer.status == Status.RTHROTTLED
    # Parts of a concatenated message are refused at once, and none is kept.
    udh = bytes([5, 0, 3, 0x42, 2, 1])
    status, _ = await submit(client, udh + b"part one", esm_class=0x40)
    assert status == Status.RTHROTTLED
    rows = await smpp.store._all("SELECT COUNT(*) FROM smpp_submits")
    assert rows[0][0] == 0
    assert await _stored(smpp) == 1


async def test_a_quota_reached_at_the_last_part_keeps_the_others(smpp: Smpp) -> None:
    # The first part passes; then the quota is used up by another send; the last part is
    # throttled and forgotten alone, so that the ESME's retry completes the message later.
    client = await smpp.bound()
    first = bytes([5, 0, 3, 0x43, 2, 1]) + b"Hello "
    last = bytes([5, 0, 3, 0x43, 2, 2]) + b"world"
    assert (await submit(client, first, esm_class=0x40))[0] == 0
    await smpp.gateway.store.set_account_quota(smpp.account.id, 1, None)
    assert (await submit(client))[0] == 0  # uses the quota up
    assert (await submit(client, last, esm_class=0x40))[0] == Status.RTHROTTLED
    rows = await smpp.store._all("SELECT COUNT(*) FROM smpp_submits WHERE concat_key IS NOT NULL")
    assert rows[0][0] == 1
    await smpp.gateway.store.set_account_quota(smpp.account.id, None, None)
    assert (await submit(client, last, esm_class=0x40))[0] == 0
    texts = await smpp.store._all("SELECT body FROM messages ORDER BY id")
    assert [t[0] for t in texts][-1] == "Hello world"


async def _only_key(smpp: Smpp, name: str) -> ApiKey:
    (key,) = [k for k in await smpp.gateway.store.list_api_keys(smpp.account.id)
              if k.name == name]  # fmt: skip
    return key


async def test_unchanged_keys_keep_their_sessions(quick_key_watch: None, smpp: Smpp) -> None:
    _, password = await _key(smpp, "both", ["send", "read"])
    _, receiver = await _bind(smpp, Cmd.BIND_RECEIVER, "both", password)
    _, sender = await _bind(smpp, Cmd.BIND_TRANSMITTER, "both", password)
    await asyncio.sleep(0.3)  # a few rounds of the key watch
    assert (await submit(sender))[0] == 0
    assert len([s for s in smpp.server.sessions if s.who is not None]) == 2
    assert not receiver.reader.at_eof()


async def test_migration_20_turns_smpp_credentials_into_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    with monkeypatch.context() as patch:  # the schema as it was before migration 20
        patch.setattr(
            sqlite_schema, "MIGRATIONS", [m for m in sqlite_schema.MIGRATIONS if m[0] < 20]
        )
        assert sqlite_schema.migrate(conn) == 19
    hashed = security.hash_password("kQrr0zKv")
    conn.execute(
        "INSERT INTO accounts(id, email, password_hash, created) VALUES (1, 'a@b.c', 'x', 1)"
    )
    conn.execute("INSERT INTO smpp_credentials VALUES ('crm1', 1, ?, 'otp', 5)", (hashed,))
    assert sqlite_schema.migrate(conn) == sqlite_schema.MIGRATIONS[-1][0]
    conn.close()
    store = SqliteStore(path)
    await store.open()
    try:
        found = await store.smpp_login("CRM1")
        assert found is not None
        login, account = found
        assert account.id == 1 and login.key.scopes == ("send", "read")
        assert (login.key.smpp_system_id, login.key.smpp_pool) == ("crm1", "otp")
        assert login.key.rate_per_minute == 6000 and login.password_hash == hashed
        assert await store.api_key_by_hash(security.hash_token("anything")) is None
    finally:
        await store.close()
