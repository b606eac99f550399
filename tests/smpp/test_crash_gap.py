"""A crash right after a message is committed must not lose its receipt: the message and the
rows that ask for its receipt (smpp_submits) are one transaction, for whole messages and for the
last part of a concatenated one."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from simhive.server.core.status import Status as Sms
from simhive.server.smpp.pdu import Tag
from simhive.server.store.base import StoreError
from simhive.server.store.sqlite import SqliteStore
from tests.smpp.conftest import Smpp
from tests.smpp.test_session import submit


def crash_after_a_message(smpp: Smpp, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """From the first commit that stored a message on, every write fails as if the process had
    died there; returns a function that 'restarts' (writes work again)."""
    assert isinstance(smpp.store, SqliteStore)  # its writer is what this crash stops
    writer = smpp.store.writer
    db = smpp.store.path
    crashed = False

    def messages() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])

    def dying(real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def write(*args: Any, **kwargs: Any) -> Any:
            nonlocal crashed
            if crashed:
                raise StoreError("the server died")
            result = await real(*args, **kwargs)
            crashed = messages() > 0
            return result

        return write

    monkeypatch.setattr(writer, "submit", dying(writer.submit))
    monkeypatch.setattr(writer, "insert", dying(writer.insert))
    return lambda: monkeypatch.undo()


def submits_of_messages(smpp: Smpp) -> dict[int, list[str]]:
    assert isinstance(smpp.store, SqliteStore)
    with contextlib.closing(sqlite3.connect(f"file:{smpp.store.path}?mode=ro", uri=True)) as c:
        ids = [int(r[0]) for r in c.execute("SELECT id FROM messages ORDER BY id")]
        return {
            i: [str(r[0]) for r in c.execute(
                "SELECT smpp_id FROM smpp_submits WHERE sms_id = ? ORDER BY id", (i,))]
            for i in ids
        }  # fmt: skip


async def test_a_whole_message_and_its_receipt_row_commit_together(
    smpp: Smpp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await smpp.bound()
    restart = crash_after_a_message(smpp, monkeypatch)
    status, message_id = await submit(client, registered_delivery=1)
    assert status == 0
    assert submits_of_messages(smpp) == {int(message_id): [message_id]}
    restart()
    await smpp.set_status(int(message_id), Sms.DELIVERED)
    receipt = await client.deliver()
    assert receipt.tlv(Tag.RECEIPTED_MESSAGE_ID) == message_id.encode() + b"\0"


async def test_the_last_part_links_its_message_in_the_same_commit(
    smpp: Smpp, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await smpp.bound()
    ids = []
    for seq, chunk in ((1, b"two "), (2, b"parts")):
        if seq == 2:
            restart = crash_after_a_message(smpp, monkeypatch)
        udh = bytes([5, 0, 3, 0x17, 2, seq])
        status, message_id = await submit(client, udh + chunk, esm_class=0x40,
                                          registered_delivery=1)  # fmt: skip
        assert status == 0
        ids.append(message_id)
    (sms_id,) = submits_of_messages(smpp)
    assert submits_of_messages(smpp) == {sms_id: ids}
    restart()
    await smpp.set_status(sms_id, Sms.DELIVERED)
    got = set()
    for _ in ids:
        receipt = await client.deliver()
        await client.ack(receipt)
        got.add(receipt.tlv(Tag.RECEIPTED_MESSAGE_ID))
    assert got == {i.encode() + b"\0" for i in ids}
