"""The memory floor of simhive's two-process design, measured in the same run as the gateway.

The RSS target for server plus agent only means something next to what the platform itself
costs on the same machine and Python: an aiohttp process that answers one request holds most of
what the server needs before any simhive code loads, and a Python process with asyncio, sqlite3
and json holds what the agent needs. Both are started as real processes here, so the figures move
with the interpreter, the libraries and the allocator of the run they are printed beside.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from bench._common import free_port, process
from bench._e2e import rss_kib

# What `simhive-agent run` imports before its own code: asyncio without ssl (it blocks ssl while
# asyncio loads when no server URL is https), sqlite3 for its journal and json for the protocol.
# An in-memory database is opened so that SQLite itself is initialised, as in the agent.
_RUNTIME = """
import sys
sys.modules["ssl"] = None
import asyncio
del sys.modules["ssl"]
import json, sqlite3
sqlite3.connect(":memory:").execute("SELECT 1")
asyncio.run(asyncio.sleep(0))
print("ready", flush=True)
sys.stdin.read()
"""


def bare_aiohttp_mib(workdir: Path) -> float:
    """RSS of bench._bare (one aiohttp handler) after it has answered one form POST."""
    port = free_port()
    argv = [sys.executable, "-m", "bench._bare", str(port)]
    with process(argv, port, workdir / "bare-floor.log") as bare:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/getdata/addsms", data=b"token=x&sendto=1&body=x"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
        return rss_kib(bare.pid)[0] / 1024


def bare_runtime_mib() -> float:
    """RSS of a Python process with asyncio (no ssl), sqlite3 and json loaded and used."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUNTIME],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the runtime floor process did not start")
        return rss_kib(proc.pid)[0] / 1024
    finally:
        proc.kill()
        proc.wait()


def rows(workdir: Path, gateway_mib: float) -> list[tuple[str, float, str]]:
    server_floor = bare_aiohttp_mib(workdir)
    agent_floor = bare_runtime_mib()
    floor = server_floor + agent_floor
    return [
        ("baseline: bare aiohttp handler process, one request served", server_floor, "MiB"),
        ("baseline: Python + asyncio (no ssl) + sqlite3 + json process", agent_floor, "MiB"),
        ("floor of server + agent (the two baselines)", floor, "MiB"),
        ("simhive's own memory above that floor", gateway_mib - floor, "MiB"),
        ("ratio agent + server RSS / floor", gateway_mib / floor, "x"),
    ]
