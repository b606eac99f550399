"""Single sends: concurrent `addsms` requests/s against a bare aiohttp handler.

Both servers run as their own processes and get the same urlencoded requests from the same client
(this process, `--concurrency` connections in parallel). The bare handler only parses the form and
answers a constant; simhive authenticates, validates, normalises, stores durably (group commit,
synchronous=FULL) and answers the id.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench._common import free_port, gateway, process, report


async def hammer(url: str, form: dict[str, str], requests: int, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            data = {**form, "customerid": str(i)}
            async with session.post(f"{url}/getdata/addsms", data=data) as r:
                body = await r.json()
                if body.get("error") != 0:
                    raise RuntimeError(f"request failed: {body}")

        await asyncio.gather(*(one(i) for i in range(min(200, requests))))  # warm-up
        remaining = iter(range(requests))

        async def worker() -> None:
            for i in remaining:
                await one(i)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return requests / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    args = parser.parse_args(argv)
    requests = 50 if args.quick else args.requests
    rounds = 1 if args.quick else args.rounds
    simhive_rates: list[float] = []
    bare_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="simhive-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        argv_bare = [sys.executable, "-m", "bench._bare", str(port)]
        with gateway(workdir) as gw, process(argv_bare, port, workdir / "bare.log"):
            form = {"token": gw.token, "sendto": "+49 157 52982212", "body": "Your code: 123456",
                    "device_id": str(gw.device_id), "sim": "0"}  # fmt: skip
            # Rounds alternate between the two servers so that background load on the machine
            # hits both alike; the median of each is reported.
            for _ in range(rounds):
                simhive_rates.append(asyncio.run(hammer(gw.url, form, requests, args.concurrency)))
                bare_url = f"http://127.0.0.1:{port}"
                bare_rates.append(asyncio.run(hammer(bare_url, form, requests, args.concurrency)))
            with sqlite3.connect(gw.db) as check:
                stored = check.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            expected = rounds * (requests + min(200, requests))
            if stored != expected:
                raise RuntimeError(f"expected {expected} stored messages, found {stored}")
    simhive_rate = statistics.median(simhive_rates)
    bare_rate = statistics.median(bare_rates)
    ratio = simhive_rate / bare_rate
    report(
        f"addsms ({rounds} rounds x {requests} requests, {args.concurrency} concurrent clients,"
        " medians)",
        [
            ("simhive addsms (real server, durable)", simhive_rate, "req/s"),
            ("baseline bare aiohttp handler", bare_rate, "req/s"),
            ("ratio simhive / baseline", ratio, "x"),
        ],
    )
    return {"server": simhive_rate, "baseline": bare_rate, "ratio": ratio}


if __name__ == "__main__":
    main()
