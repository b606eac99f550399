"""A tiny pyserial AT client for the pty tests: send a line, read up to a regex."""

from __future__ import annotations

import re
import time

import serial

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r]*)\r\n")


class AtPort:
    def __init__(self, path: str) -> None:
        self.serial = serial.Serial(path, 115200, timeout=0.05, exclusive=True)
        self.buf = bytearray()
        self.consumed = 0  # count of "+CDS" URCs passed over by expect(), for the benchmark

    def close(self) -> None:
        self.serial.close()

    def __enter__(self) -> AtPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, data: bytes) -> None:
        self.serial.write(data)

    def expect(self, pattern: bytes | re.Pattern[bytes], timeout: float = 10.0) -> str:
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, bytes) else pattern
        deadline = time.monotonic() + timeout
        while True:
            m = regex.search(self.buf)
            if m:
                taken = bytes(self.buf[: m.end()])
                del self.buf[: m.end()]
                self.consumed += taken.count(b"+CDS: ")
                return taken.decode("latin-1")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pattern!r} not seen; have {bytes(self.buf)!r}")
            # what is there now, or wait (up to the 50 ms timeout) for the first byte
            self.buf += self.serial.read(self.serial.in_waiting or 1)

    def cmd(self, line: str, timeout: float = 10.0) -> str:
        self.serial.write(line.encode() + b"\r")
        return self.expect(FINAL, timeout)

    def send_pdu(self, length: int, hex_pdu: str) -> str:
        self.serial.write(f"AT+CMGS={length}\r".encode())
        self.expect(b"> ")
        self.serial.write(hex_pdu.encode() + b"\x1a")
        return self.expect(FINAL, 30)

    def drain(self, quiet: float = 0.2, limit: float = 3.0) -> bytes:
        """What arrives until the line is quiet for `quiet` s (at most `limit` s in all)."""
        end = time.monotonic() + quiet
        stop = time.monotonic() + limit
        while time.monotonic() < min(end, stop):
            chunk = self.serial.read(self.serial.in_waiting or 1)
            if chunk:
                self.buf += chunk
                end = time.monotonic() + quiet
        data = bytes(self.buf)
        self.buf.clear()
        return data
