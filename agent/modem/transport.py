"""Byte transports under the AT channel: a serial port (pyserial) and an in-memory pair for tests.

A transport moves bytes and reports loss of the link; it knows nothing about AT. Input is pushed:
`open(receiver)` hands every chunk to `receiver.data_received` as the event loop sees it arrive,
and calls `receiver.link_lost(why)` once when the device goes away by itself (a USB modem
unplugged, a pty closed, a write that fails): that is how the supervisor notices an unplug.
Pushing instead of a `read()` that a task awaits saves the task a wake-up and a step per chunk
of input, about three per SMS.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Protocol

import serial

from .portaccess import explain_open_error

__all__ = ["MemoryTransport", "Receiver", "SerialTransport", "Transport", "TransportClosed"]


class TransportClosed(ConnectionError):
    """The link is gone (unplugged, closed, or never opened)."""


class Receiver(Protocol):
    """Who a transport hands its input to; both run on the event loop and must not raise."""

    def data_received(self, data: bytes) -> None: ...

    def link_lost(self, why: str) -> None:
        """The link went away by itself; not called after the owner's own `close()`."""


class Transport(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def is_open(self) -> bool: ...

    async def open(self, receiver: Receiver) -> None:
        """Open the link; input goes to `receiver` from the next turn of the event loop on."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class SerialTransport:
    """A tty (USB modem, UART, pty) opened with pyserial, read through the event loop.

    The port is opened exclusively (TIOCEXCL) so that ModemManager or a second agent fails fast
    instead of interleaving with our stream. pyserial configures the
    line; reads and writes then go through the file descriptor with `loop.add_reader`, so no
    thread is parked per modem.

    The reader callback reads the port once per readiness the event loop reports and hands the
    bytes to the receiver there and then. Reading on the off chance after every chunk meant an
    empty read (EAGAIN) per chunk: about three system calls per SMS more.
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
        self._receiver: Receiver | None = None
        self._empty = 0  # readiness without data in a row (see _on_readable)

    @property
    def name(self) -> str:
        return self._port

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    async def open(self, receiver: Receiver) -> None:
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
        self._serial, self._receiver, self._empty = ser, receiver, 0
        # The last step of open: no input can reach the receiver before open() has returned.
        asyncio.get_running_loop().add_reader(ser.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        ser, receiver = self._serial, self._receiver
        if ser is None or receiver is None:
            return
        try:
            data = os.read(ser.fileno(), 4096)
        except BlockingIOError:
            data = b""
        except OSError as exc:
            # EIO: the pty master or the USB device disappeared.
            self._lose(f"{self._port}: {exc}")
            return
        if data:
            self._empty = 0
            receiver.data_received(data)
            return
        # A tty in non-blocking raw mode (VMIN=0) reads b"" when idle, so b"" alone is not
        # EOF; "ready to read but nothing there" repeatedly is a hang-up (pyserial's rule).
        self._empty += 1
        if self._empty >= 3:
            self._lose(f"{self._port}: device reports readiness but no data")

    def _lose(self, why: str) -> None:
        """The device went away: close the port and tell the receiver, once."""
        receiver = self._receiver
        if self._serial is None:
            return
        self._close_now()
        if receiver is not None:
            receiver.link_lost(why)

    def _fd(self) -> int:
        if self._serial is None:
            raise TransportClosed(f"{self._port} is not open")
        return int(self._serial.fileno())

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
                    why = f"{self._port}: write stalled"
                    self._lose(why)
                    raise TransportClosed(why) from None
                await asyncio.sleep(0.005)
                continue
            except OSError as exc:
                why = f"{self._port}: {exc}"
                self._lose(why)
                raise TransportClosed(why) from exc
            view = view[n:]

    async def close(self) -> None:
        self._close_now()

    def _close_now(self) -> None:
        ser, self._serial, self._receiver = self._serial, None, None
        if ser is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(ser.fileno())
        with contextlib.suppress(Exception):
            ser.close()


class MemoryTransport:
    """An in-memory link for unit tests. The test plays the modem.

    `feed(bytes)` delivers modem output to the receiver on the event loop's next turn, as a
    port's readiness would; `on_write` (if set) is called with every chunk the driver writes, and
    may call `feed` to answer. `unplug()` loses the link after what was fed before it.
    """

    def __init__(self, name: str = "memory", on_write: Callable[[bytes], None] | None = None):
        self._name = name
        self._receiver: Receiver | None = None
        self.on_write = on_write
        self.written = bytearray()
        self.fail_open = False
        self.opens = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def is_open(self) -> bool:
        return self._receiver is not None

    async def open(self, receiver: Receiver) -> None:
        if self.fail_open:
            raise TransportClosed(f"{self._name}: no such device")
        if self._receiver is None:
            self._receiver = receiver
            self.opens += 1

    def feed(self, data: bytes) -> None:
        receiver = self._receiver
        if receiver is not None:
            asyncio.get_running_loop().call_soon(self._deliver, receiver, data)

    def _deliver(self, receiver: Receiver, data: bytes) -> None:
        if self._receiver is receiver:  # not closed or reopened since it was fed
            receiver.data_received(data)

    def unplug(self) -> None:
        receiver = self._receiver
        if receiver is not None:
            asyncio.get_running_loop().call_soon(self._unplugged, receiver)

    def _unplugged(self, receiver: Receiver) -> None:
        if self._receiver is receiver:
            self._receiver = None
            receiver.link_lost(f"{self._name}: unplugged")

    async def write(self, data: bytes) -> None:
        if self._receiver is None:
            raise TransportClosed(f"{self._name} is not open")
        self.written += data
        if self.on_write is not None:
            self.on_write(bytes(data))

    async def close(self) -> None:
        self._receiver = None
