"""Start-up failures, told to the operator as one line: what went wrong and what to do about it.

Anything that stops a command before it can do its work (the listening socket, the database, the
TLS files) raises StartupError with a cause and a hint; the CLI turns it into one line on stderr
and exit status 2 (server/cli.py, `StartupErrors`), never a traceback.
"""

from __future__ import annotations

import errno
import socket

from simhive.server.port_owner import port_holders

EXIT_STATUS = 2


class StartupError(Exception):
    def __init__(self, cause: str, hint: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.hint = hint

    def line(self) -> str:
        return f"{self.cause}; hint: {self.hint}"


def bind_error(host: str, port: int, exc: OSError) -> StartupError:
    """What a failed bind (or name lookup) of host:port means, with what to do about it."""
    where = f"cannot listen on {host}:{port}"
    if isinstance(exc, socket.gaierror):
        return StartupError(
            f"{where}: the name {host!r} does not resolve ({exc.strerror})",
            "give an IP address with --host, e.g. 127.0.0.1 (this machine) or 0.0.0.0 (all)",
        )
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"{where}: the port is in use {_holder_text(port)}",
            f"stop that process or choose another port with --port (to see who listens: "
            f"ss -ltnp 'sport = :{port}', as root for other users' processes)",
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(
            f"{where}: {host} is not an address of this machine",
            "use 127.0.0.1 (this machine only), 0.0.0.0 (every address) or one `ip addr` lists",
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StartupError(
            f"{where}: permission denied",
            "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability; use a port from "
            "1024 up (e.g. --port 8080) behind a reverse proxy",
        )
    return StartupError(f"{where}: {exc.strerror or exc}", "check --host and --port")


def _holder_text(port: int) -> str:
    holders = port_holders(port)
    if holders is None:
        return "by another process (its name could not be read from /proc)"
    if not holders:
        return "by a process of another user (/proc does not show it to this one)"
    return "by " + ", ".join(f"{name} (pid {pid})" for pid, name in holders)
