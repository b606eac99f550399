"""Which process holds a TCP port, read from /proc as `ss -p` does.

/proc/net/tcp and tcp6 list the sockets of this network namespace with the inode of each; the
process owning an inode has a descriptor in /proc/PID/fd that links to `socket:[INODE]`. Other
users' descriptors are unreadable without root, which is why the answer may be partial.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
_TIME_WAIT = "06"  # a closed connection's remains: owned by no process, and no bar to a bind


def port_holders(port: int, proc: Path = PROC) -> list[tuple[int, str]] | None:
    """(pid, command name) of the processes with a TCP socket bound to `port`, sorted by pid.

    None when no such socket is listed at all (no /proc, or another namespace); an empty list
    when sockets are listed but none of their processes could be read (another user's).
    """
    inodes = _socket_inodes(port, proc)
    if not inodes:
        return None
    holders: list[tuple[int, str]] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:  # another user's process, or it just ended
            continue
        for fd in fds:
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                holders.append((int(entry.name), _name(entry)))
                break
    return sorted(holders)


def _socket_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] == _TIME_WAIT or fields[9] == "0":
                continue
            _, _, hex_port = fields[1].rpartition(":")
            if int(hex_port, 16) == port:
                inodes.add(fields[9])
    return inodes


def _name(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip() or "?"
    except OSError:
        return "?"
