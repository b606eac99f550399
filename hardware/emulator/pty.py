"""A pseudo-terminal standing in for a modem's serial port, with a stable symlink.

The emulator keeps the slave side open itself: when the last client closes the port, reads on
the master would otherwise fail with EIO and output would be lost. Output nobody reads is bounded
and dropped, as bytes on a real UART are lost when no host listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import termios
import tty
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MAX_BACKLOG = 8 * 1024  # a few KiB of stale URCs at most, like a UART FIFO plus driver buffer


class PtyPort:
    def __init__(self, link: Path | None, on_data: Callable[[bytes], None]) -> None:
        self.link = link
        self._on_data = on_data
        self._master = -1
        self._slave = -1
        self._backlog = bytearray()
        self._writer_registered = False
        self.path = ""

    @property
    def is_open(self) -> bool:
        return self._master >= 0

    def open(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # the modem echoes (ATE1), never the line discipline
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        if self.link is not None:
            # replace atomically so a client never sees the link missing during a replug
            tmp = self.link.with_name(self.link.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(self.path, tmp)
            os.replace(tmp, self.link)
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._readable)
        return self.path

    def close(self, *, remove_link: bool = True) -> None:
        if self._master < 0:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._master)
        if self._writer_registered:
            loop.remove_writer(self._master)
            self._writer_registered = False
        # closing both ends hangs up any client: its reads fail, as on a USB unplug
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1
        self._backlog.clear()
        if remove_link and self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                return  # no client right now
            raise
        if data:
            self._on_data(data)

    def write(self, data: bytes) -> None:
        if self._master < 0:
            return
        if self._backlog:
            self._queue(data)
            return
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            log.debug("pty write failed: %s", exc)
            return
        if n < len(data):
            self._queue(data[n:])

    def _queue(self, data: bytes) -> None:
        self._backlog += data
        if len(self._backlog) > MAX_BACKLOG:
            del self._backlog[: len(self._backlog) - MAX_BACKLOG]
        if not self._writer_registered:
            asyncio.get_running_loop().add_writer(self._master, self._flush)
            self._writer_registered = True

    def _flush(self) -> None:
        try:
            n = os.write(self._master, bytes(self._backlog))
        except BlockingIOError:
            return
        except OSError:
            n = len(self._backlog)
        del self._backlog[:n]
        if not self._backlog and self._writer_registered:
            asyncio.get_running_loop().remove_writer(self._master)
            self._writer_registered = False
