"""The fault-test proxy itself: it forwards, drops open connections, refuses, and recovers."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.support.tcpproxy import TcpProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        # The proxy resets its upstream side on drop/refuse: that is the point, not an error.
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield int(srv.getsockname()[1])
    stop.set()
    srv.close()


def roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def test_forwards_drops_refuses_and_recovers(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        a = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        assert roundtrip(a, b"hello" * 1000) == b"hello" * 1000

        proxy.drop()
        with pytest.raises(OSError):  # reset, or at least a closed stream
            if not roundtrip(a, b"x"):
                raise ConnectionResetError("closed")
        a.close()

        b = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        assert roundtrip(b, b"still here") == b"still here"

        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        with pytest.raises(OSError):
            if not roundtrip(b, b"x"):
                raise ConnectionResetError("closed")
        b.close()

        proxy.accept()
        c = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        assert roundtrip(c, b"back") == b"back"

        proxy.hold()
        c.sendall(b"held")
        c.settimeout(0.5)
        with pytest.raises(TimeoutError):
            c.recv(10)
        proxy.release()
        c.settimeout(5)
        assert c.recv(10) == b"held"
        c.close()
        assert proxy.connections_total == 3
