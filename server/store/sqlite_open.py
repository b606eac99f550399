"""Opening the SQLite file: created private, and every way it can fail told as cause and hint.

SQLite itself says little that helps an operator: a read-only file opens and fails only at the
first write ("attempt to write a readonly database"), a directory it cannot write fails as
"unable to open database file". So the path is checked first, and SQLite's errors are matched to
what an operator can do about them.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from simhive.server.paths import private_dir, private_file
from simhive.server.store.base import StoreOpenError

ELSEWHERE = "or choose another place with --db or $SIMHIVE_DATA"


def _user() -> str:
    return f"this user (uid {os.geteuid()})"


def prepare(path: Path) -> None:
    """Create the data directory (0700) and the database file (0600) if they are missing."""
    if path.is_dir():
        raise StoreOpenError(
            f"the database path {path} is a directory", f"give a file, e.g. --db {path / 'x'}"
        )
    directory = path.parent
    blocking = next((p for p in directory.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None or (directory.exists() and not directory.is_dir()):
        raise StoreOpenError(
            f"cannot create the data directory {directory}: {blocking or directory} is a file",
            f"move that file away, {ELSEWHERE}",
        )
    try:
        private_dir(directory)
    except OSError as exc:
        raise StoreOpenError(
            f"cannot create the data directory {directory}: {exc.strerror}",
            f"create it as a user who may (mkdir -m 700) and give it to {_user()}, {ELSEWHERE}",
        ) from None
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise _read_only(path)
        return
    try:
        private_file(path)
    except OSError as exc:
        raise StoreOpenError(
            f"cannot create the database {path}: {exc.strerror}",
            f"make {directory} writable for {_user()}, {ELSEWHERE}",
        ) from None


def _read_only(path: Path) -> StoreOpenError:
    what = "read-only" if os.access(path, os.R_OK) else "unreadable"
    return StoreOpenError(
        f"the database {path} is {what} for {_user()}",
        f"chown or chmod it (and its -wal and -shm files) for the user the server runs as, "
        f"{ELSEWHERE}",
    )


def open_error(path: Path, exc: sqlite3.Error) -> StoreOpenError:
    """What SQLite's error on opening (or migrating) `path` means for the operator."""
    text = str(exc)
    if "file is not a database" in text:
        return StoreOpenError(
            f"{path} is not an SQLite database",
            f"point --db at the simhive database, or move {path.name} away to start a new one",
        )
    if "malformed" in text or "corrupt" in text:
        return StoreOpenError(
            f"the database {path} is damaged ({text})",
            "restore it from a backup (sqlite3's .recover can save what is left)",
        )
    if "locked" in text or "busy" in text:
        return StoreOpenError(
            f"the database {path} stays locked by another process",
            f"find it with: fuser -v {path}",
        )
    if not os.access(path, os.W_OK):
        return _read_only(path)
    if not os.access(path.parent, os.W_OK | os.X_OK):  # the file is writable, its directory not
        return StoreOpenError(
            f"cannot create files in {path.parent} ({text})",
            f"SQLite keeps {path.name}-wal and {path.name}-shm beside the database: make the "
            f"directory writable for {_user()}, {ELSEWHERE}",
        )
    if "readonly" in text:  # a read-only file system, or a -wal / -shm file of another user
        return _read_only(path)
    return StoreOpenError(f"cannot open the database {path}: {text}", "check the file and its disk")
