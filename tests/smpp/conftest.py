"""In-process SMPP server over a fresh SQLite store (tests/store/test_smpp_pg.py runs the session
suite again over PostgreSQL), and a raw client built on simhive's codec
(it can send what no library would: bad lengths, unknown commands, half PDUs)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from simhive.server.core import security
from simhive.server.core.dates import now_us
from simhive.server.core.gateway import Gateway
from simhive.server.core.keys import new_smpp_password
from simhive.server.core.limits import KEY_RATE_MAX_PER_MINUTE
from simhive.server.core.models import Account
from simhive.server.core.native_models import ApiKey
from simhive.server.smpp.pdu import HEADER_LEN, Cmd, Pdu, decode, decode_header, encode
from simhive.server.smpp.server import SmppServer, attach
from simhive.server.smpp.settings import SmppSettings
from simhive.server.store.pg import PgStore
from simhive.server.store.smpp_store import SmppStore
from simhive.server.store.sqlite import SqliteStore

# Short timeouts so that tests of the limits do not wait long; everything else as shipped.
TEST_SETTINGS = SmppSettings(
    host="127.0.0.1", port=0, bind_timeout=1.0, read_timeout=0.5, poll_seconds=0.05,
    response_timeout=2.0,
)  # fmt: skip


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashes made here use a smaller scrypt cost (the cost is stored in each hash, so checks
    follow it): every test creates an account and a credential, and binds several times."""
    monkeypatch.setattr(security, "SCRYPT_N", 2**10)


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seq = 0
        self.delivered: list[Pdu] = []  # deliver_sm the server sent, in order

    @classmethod
    async def open(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, command_id: int, tlvs: list[tuple[int, bytes]] | None = None,
                   **fields: object) -> int:  # fmt: skip
        self.seq += 1
        pdu = Pdu(command_id, self.seq, 0, dict(fields), tlvs or [])  # type: ignore[arg-type]
        await self.write(encode(pdu))
        return self.seq

    async def read(self, wait: float = 10.0) -> Pdu:
        async with asyncio.timeout(wait):
            header = await self.reader.readexactly(HEADER_LEN)
            body = await self.reader.readexactly(decode_header(header)[0] - HEADER_LEN)
        return decode(header + body)

    async def answer(self, sequence: int, wait: float = 10.0) -> Pdu:
        """The response to `sequence`; deliver_sm arriving meanwhile are kept, unanswered."""
        while True:
            pdu = await self.read(wait)
            if pdu.command_id == Cmd.DELIVER_SM:
                self.delivered.append(pdu)
                continue
            if pdu.sequence == sequence or pdu.command_id == Cmd.GENERIC_NACK:
                return pdu

    async def answers(self, sequences: list[int], wait: float = 10.0) -> dict[int, Pdu]:
        """Responses to several requests, which may come in any order."""
        got: dict[int, Pdu] = {}
        while len(got) < len(sequences):
            pdu = await self.read(wait)
            if pdu.command_id == Cmd.DELIVER_SM:
                self.delivered.append(pdu)
            elif pdu.sequence in sequences:
                got[pdu.sequence] = pdu
        return got

    async def call(self, command_id: int, tlvs: list[tuple[int, bytes]] | None = None,
                   **fields: object) -> Pdu:  # fmt: skip
        return await self.answer(await self.send(command_id, tlvs, **fields))

    async def deliver(self, wait: float = 10.0) -> Pdu:
        """The next deliver_sm (not answered: see ack)."""
        if self.delivered:
            return self.delivered.pop(0)
        while True:
            pdu = await self.read(wait)
            if pdu.command_id == Cmd.DELIVER_SM:
                return pdu

    async def ack(self, pdu: Pdu, status: int = 0) -> None:
        await self.write(encode(Pdu(Cmd.DELIVER_SM_RESP, pdu.sequence, status)))

    async def closed(self, wait: float = 10.0) -> bool:
        """True once the server has closed the connection (reading what it sends meanwhile)."""
        async with asyncio.timeout(wait):
            while await self.reader.read(4096):
                pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@dataclass
class Smpp:
    server: SmppServer
    store: SqliteStore | PgStore
    gateway: Gateway
    account: Account
    token: str
    system_id: str
    password: str
    key: ApiKey  # the API key whose SMPP login system_id and password are
    secret: str  # the key's own secret, which binds as the password too
    clients: list[RawClient] = dataclasses.field(default_factory=list)

    @property
    def smpp_store(self) -> SmppStore:
        return self.server.store

    async def connect(self) -> RawClient:
        client = await RawClient.open(self.server.port)
        self.clients.append(client)
        return client

    async def bound(self, command_id: int = Cmd.BIND_TRANSCEIVER) -> RawClient:
        client = await self.connect()
        answer = await client.call(command_id, system_id=self.system_id, password=self.password)
        assert answer.status == 0, answer
        return client

    async def bound_by_token(self) -> RawClient:
        """Bound with the key's own secret as the password: no scrypt, for tests that bind
        often."""
        client = await self.connect()
        answer = await client.call(
            Cmd.BIND_TRANSCEIVER, system_id=self.system_id, password=self.secret
        )
        assert answer.status == 0, answer
        return client

    async def sql(self, statement: str, params: tuple[object, ...] = ()) -> None:
        """A change as another part of simhive would make it (the agent's status reports)."""

        if isinstance(self.store, PgStore):  # the same statement with $n placeholders
            pieces = statement.split("?")
            numbered = pieces[0] + "".join(f"${i}{p}" for i, p in enumerate(pieces[1:], 1))
            await self.store._execute(numbered, *params)
            return

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(statement, params)

        await self.store.writer.submit(op)

    async def set_status(self, sms_id: int, status: int) -> None:
        await self.sql(
            "UPDATE messages SET status = ?, status_changed = ? WHERE id = ?",
            (status, now_us(), sms_id),
        )


async def start_smpp(
    tmp_path: Path,
    settings: SmppSettings = TEST_SETTINGS,
    *,
    path: Path | None = None,
    store: SqliteStore | PgStore | None = None,
) -> Smpp:
    """The server over `store` (opened here), by default a new SQLite file."""
    store = store or SqliteStore(path or tmp_path / "smpp.sqlite3")
    await store.open()
    gateway = Gateway(store)
    account, token = await gateway.create_account("smpp@simhive.test", "password-123")
    server = attach(gateway, store, settings, None)
    password = new_smpp_password()
    # The highest key rate: the tests of the server's own limits must not meet the key's first.
    key, secret = await server.keys.create(
        account, "smpp", ["send", "read"], rate_per_minute=KEY_RATE_MAX_PER_MINUTE,
        smpp_system_id="crm", smpp_password=password,
    )  # fmt: skip
    await server.start()
    return Smpp(server, store, gateway, account, token, "crm", password, key, secret)


async def stop_smpp(smpp: Smpp) -> None:
    for client in smpp.clients:
        await client.close()
    await smpp.server.close()
    await smpp.store.close()


@pytest.fixture
async def smpp(tmp_path: Path) -> AsyncIterator[Smpp]:
    started = await start_smpp(tmp_path)
    try:
        yield started
    finally:
        await stop_smpp(started)


@pytest.fixture
def make_smpp(tmp_path: Path) -> Callable[..., object]:
    """A server with other settings: `await make_smpp(rate=2)`; stopped by the test."""

    async def make(**changes: object) -> Smpp:
        settings = dataclasses.replace(TEST_SETTINGS, **changes)  # type: ignore[arg-type]
        return await start_smpp(tmp_path, settings)

    return make
