"""Why a serial port cannot be opened, in words an admin can act on.

A bare `[Errno 13] Permission denied` or `Could not exclusively lock port` says nothing about
the cause. On a Linux host the usual causes are three: the user is not in the group that owns
the port (`dialout` for USB modems), ModemManager probes and holds every new tty, or another
program (a second agent, minicom, Gammu) has the port open and locked. This module finds out
which, from the same places `fuser` and `lslocks` look: `/proc/<pid>/fd`, `/proc/locks` and
the UUCP lock files in `/run/lock`. The roots are injectable so tests can use fake trees; the
agent's port errors (agent/modem/transport.py) and `simhive-agent doctor` share it.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import pwd
import stat
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Holder",
    "Roots",
    "access_problem",
    "explain_open_error",
    "holders",
    "modemmanager_pids",
    "process_name",
]

MM_FIX = (
    "stop ModemManager (sudo systemctl disable --now ModemManager) or make it ignore the modem:"
    " sudo cp hardware/udev/77-simhive-modems.rules /etc/udev/rules.d/ &&"
    " sudo udevadm control --reload && sudo udevadm trigger"
)
BUSY_ERRNOS = (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK)


@dataclass(frozen=True)
class Roots:
    """Where the host's kernel views live; tests point these at fake trees."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    dev: Path = Path("/dev")
    run: Path = Path("/run")
    etc: Path = Path("/etc")


@dataclass(frozen=True)
class Holder:
    pid: int
    name: str
    how: str = "open"  # "open", "lock" (flock/POSIX lock on the port) or "lockfile" (LCK..)
    cmdline: str = field(default="", compare=False)

    @property
    def is_modemmanager(self) -> bool:
        return self.name == "ModemManager"

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid})"


def process_name(roots: Roots, pid: int) -> str:
    try:
        return (roots.proc / str(pid) / "comm").read_text().strip() or f"pid {pid}"
    except OSError:
        return "?"


def _cmdline(roots: Roots, pid: int) -> str:
    try:
        raw = (roots.proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()[:200]


def _pids(roots: Roots) -> list[int]:
    try:
        return sorted(int(p.name) for p in roots.proc.iterdir() if p.name.isdigit())
    except OSError:
        return []


def modemmanager_pids(roots: Roots) -> list[int]:
    return [pid for pid in _pids(roots) if process_name(roots, pid) == "ModemManager"]


def _names_for(port: str) -> set[str]:
    names = {port, os.path.abspath(port)}
    with contextlib.suppress(OSError):
        names.add(os.path.realpath(port))
    return names


def _lock_inode_pids(roots: Roots, inode: int) -> set[int]:
    """PIDs holding an flock or POSIX lock on the file with this inode (`/proc/locks`)."""
    out: set[int] = set()
    try:
        lines = (roots.proc / "locks").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 00:19:10 0 EOF" (a "->" marks a waiter: skip it)
        if len(parts) < 6 or parts[1] == "->":
            continue
        try:
            pid = int(parts[4])
            ino = int(parts[5].rsplit(":", 1)[1])
        except (ValueError, IndexError):
            continue
        if ino == inode:
            out.add(pid)
    return out


def holders(port: str, roots: Roots = Roots()) -> list[Holder]:
    """Processes that have `port` open, hold a lock on it, or own its UUCP lock file.

    The process asking is left out. Processes with a lock come first: a pty emulator keeps its
    side open without locking it, while the one refusing us holds the lock."""
    names = _names_for(port)
    me = os.getpid()
    found: dict[int, Holder] = {}
    for pid in _pids(roots):
        if pid == me:
            continue
        fd_dir = roots.proc / str(pid) / "fd"
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target in names:
                found[pid] = Holder(pid, process_name(roots, pid), "open", _cmdline(roots, pid))
                break
    try:
        inode = os.stat(port).st_ino
    except OSError:
        inode = None
    if inode is not None:
        for pid in _lock_inode_pids(roots, inode):
            if pid != me:
                found[pid] = Holder(pid, process_name(roots, pid), "lock", _cmdline(roots, pid))
    for lockdir in (roots.run / "lock", roots.run.parent / "var" / "lock"):
        lockfile = lockdir / f"LCK..{os.path.basename(os.path.realpath(port))}"
        try:
            pid = int(lockfile.read_text().strip().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if pid == me or not (roots.proc / str(pid)).exists():
            continue  # a stale lock file of a process that is gone
        if pid not in found or found[pid].how == "open":  # the lock file says more
            found[pid] = Holder(pid, process_name(roots, pid), "lockfile", _cmdline(roots, pid))
    order = {"lock": 0, "lockfile": 1, "open": 2}
    return sorted(found.values(), key=lambda h: (order[h.how], h.pid))


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def access_problem(port: str) -> str | None:
    """None when this user may read and write the port, else a sentence with the fix."""
    try:
        st = os.stat(port)
    except OSError:
        return None  # missing ports are reported on their own
    # The effective ids decide what open() may do (a service may run setuid or with
    # SupplementaryGroups), so ask about those, not the real ones.
    effective = os.access in os.supports_effective_ids
    if os.access(port, os.R_OK | os.W_OK, effective_ids=effective):
        return None
    return permission_hint(port, st)


def permission_hint(port: str, st: os.stat_result | None = None) -> str:
    if st is None:
        try:
            st = os.stat(port)
        except OSError:
            st = None
    user = _user()
    if st is None:
        return f"{user} may not open {port}; serial ports belong to the dialout group: " + (
            f"sudo usermod -aG dialout {user} (then log in again)"
        )
    group = _group_name(st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    where = f"{port} is {_owner(st.st_uid)}:{group} {mode:04o}"
    groups = {_group_name(g) for g in os.getgroups()} | {_group_name(os.getegid())}
    # The usual case: the port grants its group read and write, and we are not in that group.
    if group not in ("root", str(st.st_gid)) and mode & 0o060 == 0o060 and group not in groups:
        return (
            f"{where} and user {user} is not in group {group}: sudo usermod -aG {group} {user}"
            " (then log in again, or restart the service)"
        )
    return (
        f"{where}, which user {user} may not read and write; serial ports should be"
        f" root:dialout 0660 with the user in the dialout group: sudo chgrp dialout {port} &&"
        f" sudo chmod 0660 {port} && sudo usermod -aG dialout {user}"
    )


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def busy_hint(port: str, roots: Roots = Roots()) -> str:
    found = holders(port, roots)
    mm = [h for h in found if h.is_modemmanager]
    if mm:
        return f"{port} is held by ModemManager (pid {mm[0].pid}); {MM_FIX}"
    if found:
        who = ", ".join(h.describe() for h in found[:3])
        return f"{port} is held by {who}; stop it, or use another port (check: fuser -v {port})"
    return f"{port} is locked by another process (find it with: sudo fuser -v {port})"


def explain_open_error(port: str, err: int | None, text: str, roots: Roots = Roots()) -> str:
    """One line for a failed open: what happened and the fix."""
    if err == errno.ENOENT or (err is None and not os.path.exists(port)):
        return (
            f"no such port {port}: is the modem plugged in and switched to modem mode?"
            " (ls -l /dev/serial/by-id/; simhive-agent doctor)"
        )
    if err in (errno.EACCES, errno.EPERM):
        return f"permission denied: {permission_hint(port)}"
    if err in BUSY_ERRNOS or "exclusively lock" in text:
        return f"port busy: {busy_hint(port, roots)}"
    return text
