"""What a running `simhive-agent run` loads: modules it does not use cost memory for as long as
it runs (docs/benchmarks.md, the agent's memory on 2026-12-06). These start the real command and
look at the process: its modules when it exits, and the libraries it has mapped while it runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from simhive.agent.eventwait import Flag, wait_event, wait_flags
from tests.support.procs import free_port

# Modules, and what pulled each in before: asyncio (ssl), hashlib (OpenSSL's libcrypto),
# importlib.metadata for the version (email, zipfile, csv, bz2, lzma, tempfile, calendar),
# `enroll` (urllib.request, http.client), the click CLI (gettext, uuid, platform).
NOT_FOR_RUN = {
    "ssl", "_ssl", "hashlib", "_hashlib", "importlib.metadata", "email", "email.utils",
    "zipfile", "csv", "bz2", "lzma", "tempfile", "calendar", "pickle", "urllib.request",
    "http.client", "simhive.agent.enroll", "simhive.agent.clitools", "simhive.agent.doctor",
    "click", "simhive.agent.cli", "gettext", "uuid", "platform",
}  # fmt: skip

# Runs the agent's console entry point as the installed script does, and writes the names of
# the modules loaded when it exits (after SIGTERM, the agent's normal stop).
RUNNER = (
    "import atexit, sys\n"
    "out, config = sys.argv[1:]\n"
    "def dump():\n"
    "    with open(out, 'w') as f:\n"
    "        f.write('\\n'.join(sorted(sys.modules)))\n"
    "atexit.register(dump)\n"
    "sys.argv = ['simhive-agent', 'run', '--config', config]\n"
    "from simhive.agent.launch import main\n"
    "main()\n"
)


def run_agent(tmp_path: Path, scheme: str) -> tuple[set[str], str]:
    """Start `simhive-agent run` against a server URL of `scheme` where nothing listens and a
    port that does not exist; once it has tried the server, stop it. Returns its modules and
    the shared libraries it had mapped."""
    config = tmp_path / "agent.toml"
    config.write_text(
        f'server = "{scheme}://127.0.0.1:{free_port()}"\n'
        f'journal = "{tmp_path / "journal.sqlite3"}"\n'
        'log_level = "info"\n\n[[device]]\nname = "hall"\n'
        f'token = "{"ab" * 16}"\nport = "{tmp_path / "no-such-port"}"\nprofile = "generic"\n'
    )
    modules, log = tmp_path / "modules.txt", tmp_path / "agent.log"
    # Without the coverage hook the suite may run under: coverage imports modules of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(modules), str(config)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "cannot reach the server" not in log.read_text():  # its HTTP client has run
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return set(modules.read_text().split()), maps


def test_the_console_script_is_the_launcher() -> None:
    # What RUNNER imports is what the installed `simhive-agent` runs.
    (script,) = entry_points(group="console_scripts", name="simhive-agent")
    assert script.value == "simhive.agent.launch:main"


def test_run_with_an_http_server_loads_no_tls_and_nothing_for_other_commands(
    tmp_path: Path,
) -> None:
    loaded, maps = run_agent(tmp_path, "http")
    assert "simhive.agent.runner" in loaded  # it did run
    assert sorted(loaded & NOT_FOR_RUN) == []
    assert "libcrypto" not in maps and "libssl" not in maps  # OpenSSL: about 5 MiB


def test_run_with_an_https_server_loads_tls(tmp_path: Path) -> None:
    loaded, maps = run_agent(tmp_path, "https")
    assert {"ssl", "_ssl"} <= loaded
    assert "libssl" in maps
    # The rest stays out as for http.
    assert sorted(loaded & NOT_FOR_RUN) == ["_ssl", "ssl"]


async def test_wait_event_waits_in_the_calling_task() -> None:
    event = asyncio.Event()
    tasks_before = len(asyncio.all_tasks())
    waiting = asyncio.create_task(wait_event(event, 5.0))
    await asyncio.sleep(0.01)
    assert len(asyncio.all_tasks()) == tasks_before + 1  # only the waiter: no task per wait
    event.set()
    assert await waiting is True
    event.clear()
    started = time.monotonic()
    assert await wait_event(event, 0.05) is False
    assert 0.04 < time.monotonic() - started < 1.0
    event.set()
    assert await wait_event(event, 0.0) is True


async def test_wait_event_passes_a_cancel_through() -> None:
    waiting = asyncio.create_task(wait_event(asyncio.Event(), 5.0))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_wait_flags_wakes_on_any_flag_in_the_calling_task() -> None:
    a, b = Flag(), Flag()
    tasks_before = len(asyncio.all_tasks())
    waiting = asyncio.create_task(wait_flags((a, b), 5.0))
    await asyncio.sleep(0.01)
    assert len(asyncio.all_tasks()) == tasks_before + 1  # only the waiter: no task per flag
    b.set()
    assert await waiting is True
    assert a._waiters == [] and b._waiters == []
    b.clear()
    started = time.monotonic()
    assert await wait_flags((a, b), 0.05) is False
    assert 0.04 < time.monotonic() - started < 1.0
    a.set()
    assert await wait_flags((a, b), None) is True  # set: at once
    waiting = asyncio.create_task(wait_flags((Flag(), b), None))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert b._waiters == []


async def test_flag_behaves_as_an_event_does() -> None:
    flag = Flag()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not flag.is_set() and not any(w.done() for w in waiters)
    waiters[0].cancel()  # a cancelled waiter leaves; the others still wake
    await asyncio.sleep(0)
    flag.set()
    assert await asyncio.gather(*waiters[1:]) == [True, True]
    assert await flag.wait() is True  # set: at once
    flag.clear()
    assert await wait_event(flag, 0.01) is False
    assert flag._waiters == []  # nothing left behind by timed-out or cancelled waits


def test_a_flag_costs_a_fraction_of_an_event() -> None:
    # The point of Flag: about 15 per modem, long-lived.
    def cost(make: Callable[[], object]) -> float:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [make() for _ in range(1000)]
            used = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert len(kept) == 1000
        return used / 1000

    assert cost(Flag) < 200 < 600 < cost(asyncio.Event)
