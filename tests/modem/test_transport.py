"""SerialTransport on a real pty pair: input pushed as it arrives, idle, hang-up, exclusive open,
stalled writes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading

import pytest

from simhive.agent.modem.transport import SerialTransport, TransportClosed


class Recorder:
    """A Receiver that keeps what the transport pushed."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.chunks = 0
        self.lost: list[str] = []
        self.changed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.chunks += 1
        self.changed.set()

    def link_lost(self, why: str) -> None:
        self.lost.append(why)
        self.changed.set()

    async def until(self, ok, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not ok():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def pty():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


async def test_pushes_what_the_modem_writes_and_idles_without_eof(pty):
    master, path = pty
    t, got = SerialTransport(path), Recorder()
    await t.open(got)
    await asyncio.sleep(0.1)  # idle: a non-blocking tty reads b"" here, which is not EOF
    assert not got.data and not got.lost
    os.write(master, b"\r\nOK\r\n")
    await got.until(lambda: got.data == b"\r\nOK\r\n")
    await t.write(b"AT\r")
    assert os.read(master, 100) == b"AT\r"
    await t.close()


async def test_hang_up_is_reported_once(pty):
    master, path = pty
    t, got = SerialTransport(path), Recorder()
    await t.open(got)
    await asyncio.sleep(0.05)
    os.close(master)  # the emulator's unplug, or a USB modem gone
    await got.until(lambda: got.lost)
    await asyncio.sleep(0.1)
    assert len(got.lost) == 1 and got.lost[0].startswith(path)
    assert not t.is_open
    with pytest.raises(TransportClosed):
        await t.write(b"AT\r")


async def test_the_owners_close_is_not_a_lost_link(pty):
    _, path = pty
    t, got = SerialTransport(path), Recorder()
    await t.open(got)
    await t.close()
    await asyncio.sleep(0.05)
    assert got.lost == [] and not t.is_open


async def test_second_opener_fails_fast(pty):
    _, path = pty
    first = SerialTransport(path)
    await first.open(Recorder())
    with pytest.raises(TransportClosed):
        await SerialTransport(path).open(Recorder())
    await first.close()


async def test_missing_device():
    with pytest.raises(TransportClosed):
        await SerialTransport("/dev/simhive-no-such-tty").open(Recorder())


async def test_stalled_write_gives_up(pty):
    _, path = pty  # nobody reads the master side: the pty buffer fills up
    t, got = SerialTransport(path, write_stall=0.3), Recorder()
    await t.open(got)
    with pytest.raises(TransportClosed, match="write stalled"):
        await asyncio.wait_for(t.write(b"A" * 4_000_000), 10)
    assert not t.is_open
    assert got.lost == [f"{path}: write stalled"]  # the channel above learns it as an unplug


async def test_reads_only_when_readable(pty, monkeypatch):
    """One read per chunk of input: the port is read after the event loop saw it readable,
    not on the off chance after every chunk (which reads nothing, EAGAIN, once per chunk)."""
    master, path = pty
    t, got = SerialTransport(path), Recorder()
    await t.open(got)
    calls: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        calls.append(fd)
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", counting_read)
    expected = b""
    for k in range(10):
        await asyncio.sleep(0.01)
        os.write(master, b"\r\n+CMGS: %d\r\n" % k)
        expected += b"\r\n+CMGS: %d\r\n" % k
        await got.until(lambda want=expected: got.data == want)
    assert len(calls) == 10 and got.chunks == 10
    await t.close()


async def test_a_large_input_arrives_whole_and_in_order(pty):
    """Input larger than one read (and than the pty's buffer) reaches the receiver in order and
    in full while the writer on the other side is still blocked on it."""
    master, path = pty
    t, got = SerialTransport(path), Recorder()
    await t.open(got)
    sent = bytes(range(256)) * 600  # 150 KiB: many reads of at most 4 KiB
    writer = threading.Thread(target=os.write, args=(master, sent))  # blocks while the pty is full
    writer.start()
    await got.until(lambda: len(got.data) >= len(sent), within=10)
    writer.join(5)
    assert bytes(got.data) == sent and got.chunks > 1
    await t.close()
