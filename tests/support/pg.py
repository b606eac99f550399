"""A real PostgreSQL for the tests: the one on localhost:5432 when it answers (user postgres, no
password), else a throwaway cluster of Debian's postgresql package started here.

The throwaway cluster: initdb into a temporary directory, pg_ctl start on a port picked at run
time with its socket in that directory, stopped and deleted at the end. PostgreSQL refuses to run
as root, so as root the cluster belongs to the `postgres` system user (Debian's package makes it)
or `nobody`, and the commands run through runuser. `scripts/bootstrap test` installs the package
when it is missing. SIMHIVE_TEST_PG=cluster makes the tests use a throwaway cluster even where
5432 answers; SIMHIVE_TEST_PG=postgresql://... names a server to use instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class PgServer:
    """A server the tests may create databases on; `url(db)` names one of its databases."""

    host: str
    port: int
    user: str = "postgres"
    origin: str = "localhost:5432"  # or "throwaway cluster"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def _sync(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, also while an event loop runs in this
    thread (a session fixture first asked for by an async test): on a thread of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


def answers(url: str, timeout: float = 3.0) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return _sync(probe)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin() -> Path:
    """The bin directory of the newest installed PostgreSQL (Debian keeps it out of PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: run `scripts/bootstrap test` (it installs Debian's"
            " postgresql package)"
        )
    return Path(found[-1]).parent


def _owner() -> str | None:
    """The user to run the cluster as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and there is no postgres or nobody user to run as")


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[PgServer]:
    """initdb + pg_ctl start on a fresh directory and port; stopped and removed on exit."""
    binaries = pg_bin()
    owner = _owner()
    base = Path(tempfile.mkdtemp(prefix="simhive-pg-"))
    data = base / "data"
    as_owner: list[str] = ["runuser", "-u", owner, "--"] if owner else []
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(base, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    log = base / "server.log"
    try:
        subprocess.run(
            [*as_owner, str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        # fsync off: a test cluster is thrown away, and the benchmarks use their own settings.
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*as_owner, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
             "-w", "-t", "60", "start"],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        yield PgServer("127.0.0.1", port, origin="throwaway cluster")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_owner, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True, timeout=60,
            )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def pg_server() -> Iterator[PgServer]:
    """The PostgreSQL the tests use (module docstring)."""
    choice = os.environ.get("SIMHIVE_TEST_PG", "")
    if choice.startswith("postgresql://"):
        from urllib.parse import urlsplit

        parts = urlsplit(choice)
        yield PgServer(parts.hostname or "127.0.0.1", parts.port or 5432,
                       parts.username or "postgres", origin=choice)  # fmt: skip
        return
    if choice != "cluster" and answers(LOCAL_URL):
        yield PgServer("127.0.0.1", 5432)
        return
    with throwaway_cluster() as server:
        yield server


@contextlib.contextmanager
def scratch_database(server: PgServer, prefix: str = "simhive_test") -> Iterator[str]:
    """A new, empty database on `server` (dropped on exit); yields its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server.url())
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _sync(lambda: admin(f"CREATE DATABASE {name}"))
    try:
        yield server.url(name)
    finally:
        _sync(lambda: admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def eventually(probe: Callable[[], Awaitable[Any]], what: str, limit: float) -> Any:
    """Poll `probe` until it returns something true (that value), at most `limit` seconds: a
    bound for a state that must come, not a measure of speed."""
    try:
        async with asyncio.timeout(limit):
            while True:
                if value := await probe():
                    return value
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
