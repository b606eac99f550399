"""SerialTransport on a real pty pair: idle reads, hang-up, exclusive open, stalled writes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading

import pytest

from simhive.agent.modem.transport import SerialTransport, TransportClosed


@pytest.fixture
def pty():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


async def test_reads_what_the_modem_writes_and_idles_without_eof(pty):
    master, path = pty
    t = SerialTransport(path)
    await t.open()
    reader = asyncio.create_task(t.read())
    await asyncio.sleep(0.1)  # idle: a non-blocking tty reads b"" here, which is not EOF
    assert not reader.done()
    os.write(master, b"\r\nOK\r\n")
    assert await asyncio.wait_for(reader, 5) == b"\r\nOK\r\n"
    await t.write(b"AT\r")
    assert os.read(master, 100) == b"AT\r"
    await t.close()


async def test_hang_up_is_reported(pty):
    master, path = pty
    t = SerialTransport(path)
    await t.open()
    reader = asyncio.create_task(t.read())
    await asyncio.sleep(0.05)
    os.close(master)  # the emulator's unplug, or a USB modem gone
    with pytest.raises(TransportClosed):
        await asyncio.wait_for(reader, 5)
    assert not t.is_open


async def test_second_opener_fails_fast(pty):
    _, path = pty
    first = SerialTransport(path)
    await first.open()
    with pytest.raises(TransportClosed):
        await SerialTransport(path).open()
    await first.close()


async def test_missing_device():
    with pytest.raises(TransportClosed):
        await SerialTransport("/dev/simhive-no-such-tty").open()


async def test_stalled_write_gives_up(pty):
    _, path = pty  # nobody reads the master side: the pty buffer fills up
    t = SerialTransport(path, write_stall=0.3)
    await t.open()
    with pytest.raises(TransportClosed):
        await asyncio.wait_for(t.write(b"A" * 4_000_000), 10)
    assert not t.is_open


async def test_reads_only_when_readable(pty, monkeypatch):
    """One read per chunk of input: the port is read after the event loop saw it readable,
    not on the off chance after every chunk (which reads nothing, EAGAIN, once per chunk)."""
    master, path = pty
    t = SerialTransport(path)
    await t.open()
    calls: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        calls.append(fd)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", counting_read)
    for k in range(10):
        reader = asyncio.create_task(t.read())
        await asyncio.sleep(0.01)
        os.write(master, b"\r\n+CMGS: %d\r\n" % k)
        assert await asyncio.wait_for(reader, 5) == b"\r\n+CMGS: %d\r\n" % k
    assert len(calls) == 10
    await t.close()


async def test_input_nobody_reads_is_held_then_read_in_order(pty):
    """Input that comes while nobody calls read() is read by the event loop up to a bound (then
    the port waits), and read() returns all of it, in order."""
    master, path = pty
    t = SerialTransport(path)
    await t.open()
    sent = bytes(range(256)) * 600  # 150 KiB: more than the transport holds unread
    writer = threading.Thread(target=os.write, args=(master, sent))  # blocks while the pty is full
    writer.start()
    await asyncio.sleep(0.3)  # nobody reads meanwhile
    got = bytearray()
    while len(got) < len(sent):
        got += await asyncio.wait_for(t.read(), 5)
    writer.join(5)
    assert bytes(got) == sent
    await t.close()
