"""Batch ingest: `addalotofsms` messages/s against raw `sqlite3.executemany` of the same rows.

Both sides write the same rows into the same schema with the same durability (WAL,
synchronous=FULL, one commit per 1,000-row batch). The server side goes through HTTP, JSON
parsing, validation, number normalisation and the group-commit writer of a real server process.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import cpu_seconds, gateway, report
from simhive.server.store.sqlite_schema import migrate

BATCH = 1000


def entries(device_id: int, n: int, offset: int) -> list[dict[str, Any]]:
    return [
        {
            "sendto": f"+49157{(offset + i) % 10**8:08d}",
            "body": f"Your code is {(offset + i) % 1000000:06d}",
            "device_id": device_id,
            "sim": i % 2,
            "customerid": offset + i,
            "urgent": 1 if i % 10 == 0 else 0,
        }
        for i in range(n)
    ]


async def ingest(url: str, token: str, device_id: int, batches: int, concurrency: int) -> float:
    payloads = [{"token": token, "smsdata": entries(device_id, BATCH, b * BATCH)}
                for b in range(batches)]  # fmt: skip
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for p in payloads:
        queue.put_nowait(p)

    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            while not queue.empty():
                payload = queue.get_nowait()
                async with session.post(f"{url}/getdata/addalotofsms", json=payload) as r:
                    data = await r.json()
                    if data.get("error") != 0:
                        raise RuntimeError(f"batch rejected: {data}")

        # warm-up request outside the timing
        async with session.post(
            f"{url}/getdata/addalotofsms",
            json={"token": token, "smsdata": entries(device_id, 10, 0)},
        ) as r:
            await r.read()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return batches * BATCH / elapsed


def baseline(workdir: Path, device_id: int, batches: int) -> tuple[float, float]:
    """The same rows through sqlite3.executemany, same schema and durability, one commit/batch."""
    conn = sqlite3.connect(workdir / "baseline.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    migrate(conn)
    conn.execute("INSERT INTO accounts(id, email, password_hash, created) VALUES (1, 'b', 'x', 0)")
    conn.execute(
        "INSERT INTO devices(id, account_id, title, token_hash, created)"
        " VALUES (?, 1, 'b', 'x', 0)",
        (device_id,),
    )
    rows_per_batch = [
        [
            (1, device_id, e["sendto"], e["body"], e["sim"], e["urgent"], e["customerid"], 0,
             None, 0, 0)
            for e in entries(device_id, BATCH, b * BATCH)
        ]
        for b in range(batches)
    ]  # fmt: skip
    sql = (
        "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status, urgent,"
        " customerid, created, timetosend, due, status_changed)"
        " VALUES (?, ?, 'out', ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)"
    )
    start = time.perf_counter()
    cpu_start = time.process_time()
    for rows in rows_per_batch:
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    conn.close()
    return batches * BATCH / elapsed, cpu / batches * 1000


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    args, _other = parser.parse_known_args(argv)  # run-benchmarks passes its args to every bench
    batches = 2 if args.quick else args.batches
    with tempfile.TemporaryDirectory(prefix="simhive-bench-") as tmp:
        workdir = Path(tmp)
        with gateway(workdir) as gw:
            cpu_before = cpu_seconds(gw.pid)
            server_rate = asyncio.run(
                ingest(gw.url, gw.token, gw.device_id, batches, args.concurrency)
            )
            # includes the warm-up batch of 10 messages: negligible against the run
            server_ms = (cpu_seconds(gw.pid) - cpu_before) / batches * 1000
            with sqlite3.connect(gw.db) as check:
                stored = check.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            if stored != batches * BATCH + 10:
                raise RuntimeError(f"expected {batches * BATCH + 10} stored rows, found {stored}")
        base_rate, base_ms = baseline(workdir, gw.device_id, batches)
    ratio = server_rate / base_rate
    report(
        f"addalotofsms ingest ({batches} x {BATCH} messages, {args.concurrency} clients)",
        [
            ("simhive addalotofsms (HTTP, real server)", server_rate, "msg/s"),
            ("baseline sqlite3.executemany, same rows", base_rate, "msg/s"),
            ("ratio simhive / baseline", ratio, "x"),
            ("simhive server CPU per 1,000 messages", server_ms, "ms"),
            ("baseline CPU per 1,000 messages", base_ms, "ms"),
            ("CPU-bound rate ratio (baseline CPU / simhive CPU)", base_ms / server_ms, "x"),
        ],
    )
    return {"server": server_rate, "baseline": base_rate, "ratio": ratio}


if __name__ == "__main__":
    main()
