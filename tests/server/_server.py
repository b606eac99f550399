"""A real `simhive-server` process on a free port, with an account and a device made by the CLI."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procs import console_script, free_port, running, wait_port

PASSWORD = "docs-password-1"


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [console_script("simhive-server"), *args], capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"simhive-server {' '.join(args)} failed: {result.stderr}")
    return result


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args).stdout)


@dataclass
class Server:
    url: str
    db: Path
    log: Path
    email: str
    token: str
    device_id: int
    device_token: str
    proc: subprocess.Popen[bytes]
    api_key: str = ""  # an admin key of /api/v1 that may also send by GET
    api_key_id: int = 0


@contextlib.contextmanager
def server(
    tmp_path: Path,
    email: str = "docs@example.com",
    *,
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """The server runs with `simhive-server run` options and environment variables added."""
    db = tmp_path / "simhive.sqlite3"
    account = cli_json("account", "create", "--db", str(db), "--email", email,
                       "--password", PASSWORD)  # fmt: skip
    device = cli_json("device", "create", "--db", str(db), "--email", email, "--title", "hall")
    key = cli_json("key", "create", "--db", str(db), "--email", email, "--name", "tests",
                   "--scope", "admin", "--allow-get-send",
                   "--rate-per-minute", "100000")  # fmt: skip
    port = free_port()
    log = tmp_path / "server.log"
    argv = [console_script("simhive-server"), "run", "--db", str(db), "--port", str(port), *options]
    with running(argv, log=log, env=env) as proc:
        wait_port(port)
        yield Server(
            f"http://127.0.0.1:{port}", db, log, email, account["token"], device["device_id"],
            device["token"], proc, key["key"], key["id"],
        )  # fmt: skip
