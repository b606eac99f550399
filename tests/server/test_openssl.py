"""server/openssl.py in a fresh interpreter, as `simhive-server` imports it: asyncio comes in
without ssl, and load_ssl() makes asyncio's TLS work afterwards, both ways it is used: a
connection made with TLS (the webhook client) and one upgraded with start_tls (asyncpg's
sslmode), against a TLS server on loopback that the same process runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tls import self_signed

PROBE = r"""
import simhive.server.cli  # first, as in the console script: it imports server/openssl.py first

import asyncio, json, sys
from simhive.server import openssl

cert, key, load = sys.argv[1], sys.argv[2], sys.argv[3] == "load"
report = {"ssl_at_start": "ssl" in sys.modules or "_hashlib" in sys.modules}
if load:
    openssl.load_ssl()
import ssl  # for the test's own contexts; asyncio keeps what it bound unless load_ssl() ran

server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
server_ctx.load_cert_chain(cert, key)
client_ctx = ssl.create_default_context(cafile=cert)


async def echo(reader, writer):
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def upgraded_echo(reader, writer):
    await reader.readline()  # "STARTTLS"
    writer.write(b"go\n")
    await writer.drain()
    await writer.start_tls(server_ctx)
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def main():
    tls = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    plain = await asyncio.start_server(upgraded_echo, "127.0.0.1", 0)
    out = {}
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", tls.sockets[0].getsockname()[1], ssl=client_ctx)
        writer.write(b"over tls\n")
        out["connect"] = (await reader.readline()).decode().strip()
        writer.close()
    except Exception as exc:
        out["connect"] = type(exc).__name__
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", plain.sockets[0].getsockname()[1])
        writer.write(b"STARTTLS\n")
        await reader.readline()
        await writer.start_tls(client_ctx, server_hostname="127.0.0.1")
        writer.write(b"upgraded\n")
        out["start_tls"] = (await reader.readline()).decode().strip()
        writer.close()
    except Exception as exc:
        out["start_tls"] = type(exc).__name__
    return out

report.update(asyncio.run(asyncio.wait_for(main(), 30)))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cert")
    return self_signed(folder)


def probe(certificate: tuple[Path, Path], mode: str) -> dict[str, object]:
    # Without the coverage hook the suite may run under: coverage imports hashlib itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    done = subprocess.run([sys.executable, "-c", PROBE, *map(str, certificate), mode],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_asyncio_does_tls_once_given_ssl(certificate: tuple[Path, Path]) -> None:
    report = probe(certificate, "load")
    assert report == {"ssl_at_start": False, "connect": "over tls", "start_tls": "upgraded"}


def test_without_load_ssl_asyncio_cannot(certificate: tuple[Path, Path]) -> None:
    # What load_ssl() is for: asyncio imported by simhive-server bound `ssl = None`.
    report = probe(certificate, "no")
    assert report == {"ssl_at_start": False, "connect": "RuntimeError", "start_tls": "RuntimeError"}
