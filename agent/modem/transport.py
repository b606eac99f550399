"""Byte transports under the AT channel: a serial port (pyserial) and an in-memory pair for tests.

A transport moves bytes and reports loss of the link; it knows nothing about AT. `read()` returns
the next chunk (any size) and raises `TransportClosed` when the device went away (a USB modem
unplugged, a pty closed): that is how the supervisor notices an unplug.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Protocol

import serial

from simhive.agent.eventwait import Flag

from .portaccess import explain_open_error

log = logging.getLogger(__name__)

# Input held for read() at most; beyond it the port is not read until read() takes it.
MAX_BUFFERED = 64 * 1024

__all__ = ["MemoryTransport", "SerialTransport", "Transport", "TransportClosed"]


class TransportClosed(ConnectionError):
    """The link is gone (unplugged, closed, or never opened)."""


class Transport(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def is_open(self) -> bool: ...

    async def open(self) -> None: ...

    async def read(self) -> bytes:
        """The next chunk of input; raises TransportClosed when the link is gone."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class SerialTransport:
    """A tty (USB modem, UART, pty) opened with pyserial, read through the event loop.

    The port is opened exclusively (TIOCEXCL) so that ModemManager or a second agent fails fast
    instead of interleaving with our stream. pyserial configures the
    line; reads and writes then go through the file descriptor with `loop.add_reader`, so no
    thread is parked per modem.

    The reader callback reads the port itself, once per readiness the event loop reports, and
    hands the bytes to `read()`. Reading in `read()` instead meant an empty read (EAGAIN) after
    every chunk, or a second look at a readiness already consumed: about three system calls
    per SMS more.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        exclusive: bool = True,
        write_stall: float = 10.0,
    ) -> None:
        self._port = port
        self._write_stall = write_stall
        self._baudrate = baudrate
        self._exclusive = exclusive
        self._serial: serial.Serial | None = None
        self._readable: Flag | None = None
        self._chunks: list[bytes] = []  # read by the callback, not yet returned by read()
        self._buffered = 0
        self._paused = False  # the callback stopped reading: MAX_BUFFERED bytes are waiting
        self._failed: str | None = None  # why the link is gone, found by the callback
        self._empty = 0  # readiness without data in a row (see _on_readable)

    @property
    def name(self) -> str:
        return self._port

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    async def open(self) -> None:
        if self._serial is not None:
            return
        try:
            ser = serial.Serial(
                port=self._port,
                baudrate=self._baudrate,
                timeout=0,
                write_timeout=0,
                exclusive=self._exclusive,
                rtscts=False,
                dsrdtr=False,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            # pyserial keeps the errno; turn EACCES/EBUSY/ENOENT into the cause and its fix
            # (dialout group, ModemManager or whoever holds the port: agent/modem/portaccess.py).
            err = exc.errno if isinstance(exc, OSError) else None
            why = explain_open_error(self._port, err, str(exc))
            raise TransportClosed(f"cannot open {self._port}: {why}") from exc
        self._serial = ser
        self._readable = Flag()
        self._chunks, self._buffered, self._paused = [], 0, False
        self._failed, self._empty = None, 0
        asyncio.get_running_loop().add_reader(ser.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        ser, readable = self._serial, self._readable
        if ser is None or readable is None:
            return
        try:
            data = os.read(ser.fileno(), 4096)
        except BlockingIOError:
            data = b""
        except OSError as exc:
            # EIO: the pty master or the USB device disappeared.
            self._fail(f"{self._port}: {exc}")
            return
        if data:
            self._empty = 0
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered >= MAX_BUFFERED:  # nobody reads: stop until read() catches up
                self._paused = True
                asyncio.get_running_loop().remove_reader(ser.fileno())
            readable.set()
            return
        # A tty in non-blocking raw mode (VMIN=0) reads b"" when idle, so b"" alone is not
        # EOF; "ready to read but nothing there" repeatedly is a hang-up (pyserial's rule).
        self._empty += 1
        if self._empty >= 3:
            self._fail(f"{self._port}: device reports readiness but no data")

    def _fail(self, why: str) -> None:
        self._failed = why
        ser = self._serial
        if ser is not None and not self._paused:
            self._paused = True
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(ser.fileno())
        if self._readable is not None:
            self._readable.set()

    def _fd(self) -> int:
        if self._serial is None:
            raise TransportClosed(f"{self._port} is not open")
        return int(self._serial.fileno())

    async def read(self) -> bytes:
        while True:
            if self._chunks:
                data = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks, self._buffered = [], 0
                ser = self._serial
                if self._paused and self._failed is None and ser is not None:
                    self._paused = False
                    asyncio.get_running_loop().add_reader(ser.fileno(), self._on_readable)
                return data
            if self._failed is not None:
                why = self._failed
                await self.close()
                raise TransportClosed(why)
            self._fd()  # raises once closed
            readable = self._readable
            assert readable is not None
            readable.clear()
            await readable.wait()

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._write_stall
        while view:
            fd = self._fd()
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                # A port that takes no byte for this long is wedged (USB stall, dead pty peer);
                # treating it as gone lets the supervisor reopen it instead of hanging forever.
                if loop.time() > deadline:
                    await self.close()
                    raise TransportClosed(f"{self._port}: write stalled") from None
                await asyncio.sleep(0.005)
                continue
            except OSError as exc:
                await self.close()
                raise TransportClosed(f"{self._port}: {exc}") from exc
            view = view[n:]

    async def close(self) -> None:
        ser, self._serial = self._serial, None
        if ser is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(ser.fileno())
        self._chunks, self._buffered = [], 0
        if self._readable is not None:
            self._readable.set()  # wake a parked reader so it sees the closed port
        with contextlib.suppress(Exception):
            ser.close()


class MemoryTransport:
    """An in-memory link for unit tests. The test plays the modem.

    `feed(bytes)` delivers modem output to the reader; `on_write` (if set) is called with every
    chunk the driver writes, and may call `feed` to answer. `unplug()` makes the next read fail.
    """

    def __init__(self, name: str = "memory", on_write: Callable[[bytes], None] | None = None):
        self._name = name
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._open = False
        self.on_write = on_write
        self.written = bytearray()
        self.fail_open = False
        self.opens = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self) -> None:
        if self.fail_open:
            raise TransportClosed(f"{self._name}: no such device")
        if not self._open:
            self._open = True
            self.opens += 1
            self._queue = asyncio.Queue()

    def feed(self, data: bytes) -> None:
        if self._open:
            self._queue.put_nowait(data)

    def unplug(self) -> None:
        if self._open:
            self._queue.put_nowait(None)

    async def read(self) -> bytes:
        if not self._open:
            raise TransportClosed(f"{self._name} is not open")
        data = await self._queue.get()
        if data is None:
            self._open = False
            raise TransportClosed(f"{self._name}: unplugged")
        return data

    async def write(self, data: bytes) -> None:
        if not self._open:
            raise TransportClosed(f"{self._name} is not open")
        self.written += data
        if self.on_write is not None:
            self.on_write(bytes(data))

    async def close(self) -> None:
        if self._open:
            self._open = False
            self._queue.put_nowait(None)
