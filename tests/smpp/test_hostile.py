"""Malformed PDUs, bad lengths and slow peers, in-process: each gets its SMPP answer (or is
dropped) and nobody else notices."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import struct
import types

import pytest

from simhive.server.smpp import session as session_module
from simhive.server.smpp.pdu import Cmd, Pdu, Status
from tests.smpp.conftest import Smpp

TO = "+4915752982212"


async def test_lengths_that_cannot_be_framed_close_the_connection(smpp: Smpp) -> None:
    for length in (0, 15, 0x7FFFFFFF, 0xFFFFFFFF):
        client = await smpp.bound_by_token()
        await client.write(struct.pack(">IIII", length, Cmd.SUBMIT_SM, 0, 99))
        nack = await client.read()
        assert (nack.command_id, nack.status, nack.sequence) == (
            Cmd.GENERIC_NACK, Status.RINVCMDLEN, 99,
        )  # fmt: skip
        assert await client.closed()


async def test_unknown_and_malformed_pdus_get_nacks_and_the_session_goes_on(smpp: Smpp) -> None:
    client = await smpp.bound()
    await client.write(struct.pack(">IIII", 16, 0x0BADC0DE, 0, 7))
    nack = await client.read()
    assert (nack.command_id, nack.status, nack.sequence) == (Cmd.GENERIC_NACK, Status.RINVCMDID, 7)
    # A submit_sm whose body ends inside its fields.
    await client.write(struct.pack(">IIII", 20, Cmd.SUBMIT_SM, 0, 8) + b"abcd")
    nack = await client.read()
    assert (nack.command_id, nack.status) == (Cmd.GENERIC_NACK, Status.RINVCMDLEN)
    # A field too long for its size: the command's own response with the field's status.
    long_addr = encode_raw_submit(destination=b"1" * 30)
    await client.write(long_addr)
    answer = await client.read()
    assert (answer.command_id, answer.status) == (Cmd.SUBMIT_SM_RESP, Status.RINVDSTADR)
    # A deliver_sm from the ESME is not a request it may make.
    await client.send(Cmd.DELIVER_SM, short_message=b"x")
    assert (await client.read()).status == Status.RINVCMDID
    # Still bound and working.
    answer = await client.call(Cmd.SUBMIT_SM, destination_addr=TO, short_message=b"fine")
    assert answer.status == 0 and answer.text("message_id").isdigit()


def encode_raw_submit(destination: bytes) -> bytes:
    body = b"\0" + b"\0\0" + b"\0" + b"\1\1" + destination + b"\0"
    body += bytes(3) + b"\0\0" + bytes(4) + b"\1x"
    return struct.pack(">IIII", 16 + len(body), Cmd.SUBMIT_SM, 0, 9) + body


async def test_a_bind_with_an_overlong_system_id(smpp: Smpp) -> None:
    client = await smpp.connect()
    body = b"x" * 80 + b"\0" + b"pw\0\0" + bytes(3) + b"\0"
    await client.write(struct.pack(">IIII", 16 + len(body), Cmd.BIND_TRANSCEIVER, 0, 3) + body)
    answer = await client.read()
    assert (answer.command_id, answer.status) == (Cmd.BIND_TRANSCEIVER_RESP, Status.RINVSYSID)


async def test_half_a_pdu_then_silence_is_dropped(smpp: Smpp) -> None:
    client = await smpp.bound()
    pdu = encode_raw_submit(destination=b"4915752982212")
    await client.write(pdu[:20])
    assert await client.closed()  # after read_timeout (0.5 s in these tests)


async def test_random_bytes_never_hurt_the_server(smpp: Smpp) -> None:
    rng = random.Random(18)
    bystander = await smpp.bound()
    for _ in range(40):
        client = await smpp.connect()
        await client.write(rng.randbytes(rng.randint(1, 300)))
        # Whatever it answered or whether it closed, the bystander is served at once.
        answer = await bystander.call(Cmd.ENQUIRE_LINK)
        assert answer.command_id == Cmd.ENQUIRE_LINK_RESP
        await client.close()
    for _ in range(40):  # well-framed PDUs of every command around random bodies
        client = await smpp.bound_by_token()
        command = rng.choice(list(Cmd))
        body = rng.randbytes(rng.randint(0, 120))
        await client.write(struct.pack(">IIII", 16 + len(body), command, 0, 5) + body)
        answer = await bystander.call(Cmd.ENQUIRE_LINK)
        assert answer.command_id == Cmd.ENQUIRE_LINK_RESP
        await client.close()
    answer = await bystander.call(Cmd.SUBMIT_SM, destination_addr=TO, short_message=b"still ok")
    assert answer.status == 0
    assert smpp.server.sessions  # the bystander's session, at least


async def test_a_peer_that_does_not_read_is_cut_off(smpp: Smpp) -> None:
    """What a session does once its unread output passes the buffer limit: wait for the peer at
    most write_timeout, then abort the connection. (A fake transport stands in for the peer:
    filling a real socket's kernel buffers takes megabytes and no fixed amount.)"""

    class StuckTransport:
        aborted = False

        def get_write_buffer_size(self) -> int:
            return session_module.WRITE_BUFFER_BYTES + 1

        def abort(self) -> None:
            self.aborted = True

    class StuckWriter:
        transport = StuckTransport()
        written: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.written.append(data)

        async def drain(self) -> None:
            await asyncio.Event().wait()  # the peer never reads

        def get_extra_info(self, name: str) -> object:
            return ("192.0.2.1", 1)

    settings = dataclasses.replace(smpp.server.settings, write_timeout=0.2)
    server = types.SimpleNamespace(settings=settings)
    writer = StuckWriter()
    session = session_module.Session(server, asyncio.StreamReader(), writer)  # type: ignore[arg-type]
    with pytest.raises(session_module.Closing):
        await session.send(Pdu(Cmd.ENQUIRE_LINK, 1))
    assert writer.transport.aborted and len(writer.written) == 1


async def test_a_failing_database_gets_system_errors_not_a_dead_server(smpp: Smpp) -> None:
    bound = await smpp.bound_by_token()
    await smpp.store.close()  # every read and write fails from here on
    answer = await bound.call(Cmd.SUBMIT_SM, destination_addr=TO, short_message=b"x")
    assert answer.status == Status.RSYSERR
    fresh = await smpp.connect()
    answer = await fresh.call(Cmd.BIND_TRANSCEIVER, system_id="crm", password=smpp.password)
    assert answer.status == Status.RSYSERR
    assert (await bound.call(Cmd.ENQUIRE_LINK)).command_id == Cmd.ENQUIRE_LINK_RESP
