"""The PostgreSQL driver is an optional extra: a default install (SQLite) has no asyncpg, so no
module the server loads on SQLite may import it (the install test found smpp_store.py doing so)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# asyncpg made unimportable, then every module a SQLite server and its CLI load.
PROBE = """
import sys
from pathlib import Path
sys.modules["asyncpg"] = None
import simhive.server.cli, simhive.server.app, simhive.server.smpp.server, simhive.server.metrics
from simhive.server.store.engine import make_store
from simhive.server.store.smpp_store import smpp_store
from simhive.server.store.console_engine import console_store
store = make_store(sys.argv[1])
smpp_store(store)
print("ok")
"""


def test_a_sqlite_server_loads_without_the_postgresql_driver(tmp_path: Path) -> None:
    db = f"{tmp_path}/db.sqlite3"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, db], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
