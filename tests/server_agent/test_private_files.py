"""Data is private: the server's database and the agent's journal, with their -wal and -shm
files, are created 0600 in directories created 0700, whatever the umask lets through."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from simhive.agent.journal import Journal
from simhive.server.store.sqlite import SqliteStore
from tests.server._server import PASSWORD, cli
from tests.support.procs import console_script


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: what the process would create world-writable if it relied on the umask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def assert_private(db: Path) -> None:
    assert mode(db.parent) == 0o700, oct(mode(db.parent))
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        assert mode(path) == 0o600, (path, oct(mode(path)))


@pytest.mark.usefixtures("open_umask")
async def test_the_server_database_and_its_directory_are_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "simhive.sqlite3"
    store = SqliteStore(db)
    await store.open()
    try:
        await store.create_account("a@example.com", "hash", "token-hash", "UTC", 1)
        assert_private(db)  # while open: the -wal and -shm files exist
    finally:
        await store.close()


@pytest.mark.usefixtures("open_umask")
async def test_the_agent_journal_and_its_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.sqlite3"
    journal = Journal(path)
    await journal.open()
    try:
        assert_private(path)
    finally:
        await journal.close()


@pytest.mark.integration
def test_the_cli_creates_the_default_data_directory_private(tmp_path: Path) -> None:
    data = tmp_path / "xdg" / "simhive"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    env.pop("SIMHIVE_DB", None)
    env.pop("SIMHIVE_DATA", None)
    result = subprocess.run(
        [console_script("simhive-server"), "account", "create", "--email", "a@example.com",
         "--password", PASSWORD],  # fmt: skip
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert mode(data) == 0o700 and mode(data / "simhive.sqlite3") == 0o600
    # An existing database keeps the mode its owner gave it.
    (data / "simhive.sqlite3").chmod(0o640)
    cli("account", "list", "--db", str(data / "simhive.sqlite3"))
    assert mode(data / "simhive.sqlite3") == 0o640
