"""Scale: API latency with a large message table against the same calls on a small one.

Two databases are filled directly (same schema, same account and devices): a small one and a
large one (10,000 and 1,000,000 messages by default; 2,000 of them due for the agent in both).
A real server process serves each in turn, and sequential requests measure p50/p99 latency of
the calls whose cost could grow with the table: `getallsms` with filters and with onlycount,
`getsmsstatus`, `addsms`, and an agent `pull` + `commit` of 15 messages. The ratio large / small
shows whether the indexes hold (1.0 means the table size does not matter).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import free_port, process
from simhive.server.core.security import hash_token
from simhive.server.store.sqlite_schema import migrate

TOKEN = "0123456789abcdef0123456789abcdef"
DEVICE_TOKEN = "fedcba9876543210fedcba9876543210"
DUE = 2000
DAY_US = 86_400 * 1_000_000


def build(path: Path, n: int, now_us: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # building the fixture only; the server uses FULL
    migrate(conn)
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO accounts(id, email, password_hash, created) VALUES (1, 'scale@x', 'x', 0)"
    )
    conn.execute(
        "INSERT INTO account_tokens(account_id, token_hash, created) VALUES (1, ?, 0)",
        (hash_token(TOKEN),),
    )
    for device_id, token in ((1, DEVICE_TOKEN), (2, "x" * 32)):
        conn.execute(
            "INSERT INTO devices(id, account_id, title, token_hash, created)"
            " VALUES (?, 1, ?, ?, 0)",
            (device_id, f"d{device_id}", hash_token(token)),
        )
    rng = random.Random(7)
    sql = (
        "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status, urgent,"
        " customerid, created, timetosend, due, status_changed)"
        " VALUES (1, ?, 'out', ?, 'Your code is 123456', ?, ?, 0, ?, ?, NULL, ?, ?)"
    )
    batch: list[tuple[Any, ...]] = []
    old = n - DUE
    for i in range(n):
        created = now_us - 30 * DAY_US + int(i * (30 * DAY_US) / n)
        status = 1 if i >= old else 7
        device = 1 if (i >= old or i % 2) else 2
        batch.append((device, f"+49157{rng.randrange(10**8):08d}", i % 2, status, i % 5000,
                      created, created, created))  # fmt: skip
        if len(batch) == 50_000:
            conn.executemany(sql, batch)
            batch.clear()
    conn.executemany(sql, batch)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


async def measure(url: str, rounds: int, sms_id: int) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    auth = {"Authorization": f"Bearer {DEVICE_TOKEN}"}
    async with aiohttp.ClientSession() as s:

        async def get(method: str, **params: str) -> Any:
            async with s.get(f"{url}/getdata/{method}", params={"token": TOKEN, **params}) as r:
                data = await r.json()
                if data.get("error") != 0:
                    raise RuntimeError(f"{method}: {data}")
                return data

        async def post(route: str, body: dict[str, Any]) -> Any:
            async with s.post(f"{url}/agent/v1/{route}", json=body, headers=auth) as r:
                if r.status != 200:
                    raise RuntimeError(f"{route}: {r.status} {await r.text()}")
                return await r.json()

        async def pull_commit() -> None:
            lease = await post("pull", {"max": 15, "wait": 0})
            await post("commit", {"lease_id": lease["lease_id"],
                                  "ids": [m["id"] for m in lease["messages"]]})  # fmt: skip

        async def addsms() -> None:
            async with s.post(
                f"{url}/getdata/addsms",
                data={"token": TOKEN, "sendto": "+4915752982212", "body": "x", "device_id": "2"},
            ) as r:
                if (await r.json())["error"] != 0:
                    raise RuntimeError("addsms failed")  # fmt: skip

        first_day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 2 * 86400))
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "getallsms newest 100 (orderbydesc)": lambda: get(
                "getallsms", orderbydesc="1", limit="100"),
            "getallsms device+status filter, 100": lambda: get(
                "getallsms", device_id="1", status="1", limit="100"),
            "getallsms customerid filter": lambda: get("getallsms", customerid="4321"),
            "getallsms last 2 days, 100": lambda: get(
                "getallsms", begindate=first_day, limit="100"),
            "getallsms onlycount (whole account)": lambda: get("getallsms", onlycount="1"),
            "getsmsstatus": lambda: get("getsmsstatus", sms_id=str(sms_id)),
            "addsms": addsms,
            "agent pull + commit of 15": pull_commit,
        }  # fmt: skip
        for name, call in calls.items():
            await call()  # warm caches
            times = []
            for _ in range(rounds):
                start = time.perf_counter()
                await call()
                times.append(time.perf_counter() - start)
            times.sort()
            out[name] = (statistics.median(times) * 1000, times[int(len(times) * 0.99)] * 1000)
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    args, _other = parser.parse_known_args(argv)  # run-benchmarks passes its args to every bench
    sizes = (2_500, 5_000) if args.quick else (args.small, args.large)
    rounds = 5 if args.quick else args.rounds
    results: dict[int, dict[str, tuple[float, float]]] = {}
    now_us = time.time_ns() // 1000
    with tempfile.TemporaryDirectory(prefix="simhive-bench-") as tmp:
        for n in sizes:
            db = Path(tmp) / f"scale-{n}.sqlite3"
            started = time.perf_counter()
            build(db, n, now_us)
            print(f"  built {n:,} messages in {time.perf_counter() - started:.1f} s", flush=True)
            port = free_port()
            argv_srv = [sys.executable, "-m", "simhive.server.cli", "run", "--db", str(db),
                        "--port", str(port), "--no-access-log"]  # fmt: skip
            with process(argv_srv, port, Path(tmp) / f"server-{n}.log"):
                results[n] = asyncio.run(measure(f"http://127.0.0.1:{port}", rounds, n // 2))
    small, large = sizes
    print(f"\n== scale: {large:,} vs {small:,} stored messages ({rounds} sequential calls each)")
    print(f"  {'call':<40} {'p50 small':>10} {'p50 large':>10} {'ratio':>6} {'p99 large':>10}")
    ratios: dict[str, float] = {}
    for name, (p50_small, _p99_small) in results[small].items():
        p50_large, p99_large = results[large][name]
        ratios[name] = p50_large / p50_small
        print(f"  {name:<40} {p50_small:>8.2f}ms {p50_large:>8.2f}ms {ratios[name]:>6.2f}"
              f" {p99_large:>8.2f}ms")  # fmt: skip
    return ratios


if __name__ == "__main__":
    main()
