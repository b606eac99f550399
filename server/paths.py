"""Where the server keeps its data by default (docs/configuration.md).

`--db` wins; else $SIMHIVE_DB (a path or a postgresql:// URL); else
$SIMHIVE_DATA/simhive.sqlite3; else $XDG_DATA_HOME/simhive/simhive.sqlite3 (XDG_DATA_HOME
defaults to ~/.local/share).
"""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "simhive.sqlite3"


def data_dir() -> Path:
    if os.environ.get("SIMHIVE_DATA"):
        return Path(os.environ["SIMHIVE_DATA"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "simhive"


def default_db() -> str | Path:
    """A path, or the postgresql:// URL SIMHIVE_DB holds (kept as text: a Path would fold its
    `//`)."""
    if os.environ.get("SIMHIVE_DB"):
        value = os.environ["SIMHIVE_DB"]
        if value.startswith(("postgresql://", "postgres://")):
            return value
        return Path(value).expanduser()
    return data_dir() / DB_NAME


# Data is private to the user the server runs as: the database holds SMS bodies, phone numbers
# and password hashes. SQLite creates the -wal and -shm files with the mode of the database
# file, so creating that file 0600 ourselves (before SQLite does, with 0644) covers all three.
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> None:
    """Create the directory 0700 if it is missing (missing parents get the default mode)."""
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkdir's mode is masked by the umask, which only ever removes bits: 0700 stays at most.
        path.mkdir(mode=PRIVATE_DIR, exist_ok=True)


def private_file(path: Path) -> None:
    """Create an empty file 0600 if it is missing; an existing file is left as it is."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)
