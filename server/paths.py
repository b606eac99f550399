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
