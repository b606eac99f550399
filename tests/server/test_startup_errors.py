"""Start-up failures of `simhive-server` as real processes: one line with the cause and a hint,
exit status 2, no traceback, and no "listening" before the socket is bound."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from simhive.server.port_owner import port_holders
from tests.server._server import PASSWORD, cli
from tests.support.procs import console_script

pytestmark = pytest.mark.integration


def fails_with_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The process ended with exit status 2 and one stderr line holding every needle."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: ") and "; hint: " in line, line
    assert "listening" not in result.stderr and result.stdout == ""
    for needle in needles:
        assert needle in line, line
    return line


def serve(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """`simhive-server run` that must fail at start-up (a server that starts is a failure)."""
    return command("run", *args, prefix=prefix)


def command(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    argv = [*prefix, console_script("simhive-server"), *args]
    env = dict(os.environ)
    if prefix:  # another user cannot write scripts/run-tests' coverage data: not measured
        env = {k: v for k, v in env.items() if not k.startswith("COVERAGE_")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)


@contextlib.contextmanager
def holder() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Another process listening on a port it picked."""
    code = (
        "import socket, sys\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "print(s.getsockname()[1], flush=True); sys.stdin.read()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


def test_a_port_in_use_names_the_process_that_holds_it(tmp_path: Path) -> None:
    with holder() as (proc, port):
        result = serve("--db", str(tmp_path / "x.sqlite3"), "--port", str(port))
    fails_with_one_line(result, f"127.0.0.1:{port}", "in use", f"(pid {proc.pid})", "--port")
    assert "python" in result.stderr


def test_an_address_of_another_machine_is_refused_with_a_hint(tmp_path: Path) -> None:
    # 192.0.2.1 is TEST-NET-1: never an address of this machine, and a bind sends nothing.
    result = serve("--db", str(tmp_path / "x.sqlite3"), "--host", "192.0.2.1", "--port", "8080")
    fails_with_one_line(result, "192.0.2.1 is not an address of this machine", "127.0.0.1")


@pytest.mark.parametrize(
    "command",
    [("run", "--port", "0"), ("account", "list"), ("device", "list"), ("pool", "list",
     "--email", "a@example.com"), ("token", "reset", "--email", "a@example.com")],
    ids=lambda c: " ".join(c[:2]),
)  # fmt: skip
def test_a_file_that_is_not_a_database_is_named_by_every_command(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    db = tmp_path / "notes.txt"
    db.write_text("shopping list\n" * 200)
    result = subprocess.run([console_script("simhive-server"), *command, "--db", str(db)],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    fails_with_one_line(result, f"{db} is not an SQLite database", "--db")
    assert db.read_text() == "shopping list\n" * 200  # left as it was


@pytest.mark.parametrize("inside", ["a file", "/proc"])
def test_a_data_directory_that_cannot_be_created(tmp_path: Path, inside: str) -> None:
    if inside == "a file":
        (tmp_path / "plain").write_text("x")
        db, needle = tmp_path / "plain" / "data" / "x.sqlite3", f"{tmp_path / 'plain'} is a file"
    else:  # nobody, not even root, creates directories in /proc
        db, needle = Path("/proc/simhive-data/x.sqlite3"), "No such file or directory"
    result = serve("--db", str(db), "--port", "0")
    fails_with_one_line(result, "cannot create the data directory", needle, "SIMHIVE_DATA")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users may enter (pytest's tmp_path is private to its user)."""
    path = Path(tempfile.mkdtemp(prefix="simhive-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def as_other_user() -> tuple[str, ...]:
    """Run as an unprivileged user: root writes read-only files anyway."""
    if os.geteuid() != 0:
        return ()
    return ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def test_a_read_only_database_and_a_read_only_directory(shared_dir: Path) -> None:
    db = shared_dir / "simhive.sqlite3"
    cli("account", "create", "--db", str(db), "--email", "a@example.com", "--password", PASSWORD)
    prefix = as_other_user()
    # As installed by root, run by the service user (or chmod'ed read-only).
    db.chmod(0o444)
    if not prefix:
        shared_dir.chmod(0o555)
    result = serve("--db", str(db), "--port", "0", prefix=prefix)
    fails_with_one_line(result, f"the database {db} is read-only", "chown or chmod")
    listed = command("account", "list", "--db", str(db), prefix=prefix)
    fails_with_one_line(listed, "read-only")
    # The file is writable, its directory is not: SQLite cannot create the -wal and -shm files.
    db.chmod(0o666)
    if not prefix:
        shared_dir.chmod(0o555)
    result = serve("--db", str(db), "--port", "0", prefix=prefix)
    fails_with_one_line(result, f"cannot create files in {shared_dir}", "-wal")
    shared_dir.chmod(0o755)


def test_port_holders_reads_proc_and_says_when_it_cannot_see_the_process(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    row = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0 0 {}\n"
    (tmp_path / "net" / "tcp").write_text(header + row.format("4242"))
    (tmp_path / "net" / "tcp6").write_text(header)
    # Port 8080 (0x1F90) is listed, no process of ours has its socket: another user's.
    assert port_holders(8080, tmp_path) == []
    assert port_holders(8081, tmp_path) is None
    proc = tmp_path / "77"
    (proc / "fd").mkdir(parents=True)
    (proc / "comm").write_text("nginx\n")
    (proc / "fd" / "3").symlink_to("socket:[4242]")
    assert port_holders(8080, tmp_path) == [(77, "nginx")]
