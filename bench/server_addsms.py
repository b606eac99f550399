"""Single sends: concurrent `addsms` requests/s against a bare aiohttp handler.

Both servers run as their own processes and get the same urlencoded requests from the same client
(this process, `--concurrency` connections in parallel). The bare handler only parses the form and
answers a constant; simhive authenticates, validates, normalises, stores durably (group commit,
synchronous=FULL) and answers the id.

Method: the two servers take turns in short rounds, in the order AB BA AB ... so that a slow drift
in the machine's background load falls on both alike, and each round's pair gives one ratio; the
figure is the median of those paired ratios (their spread is printed too). On a shared 2-core box
the client, the server's event loop and its writer thread compete for the same cores, so
background load moves single rounds a lot; pairing neighbouring rounds cancels most of it, where a
ratio of two medians taken from different moments did not. Server CPU per request (from /proc,
all threads) is printed as the figure least disturbed by other load.

By default the clients keep their connections open (32 connections per round, as HTTP client
libraries do); `--new-connections` opens and closes one per request, as a script calling curl
does, so that what a server spends per connection (accepting, setting it up, closing it) counts.
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

from bench._common import cpu_seconds, free_port, gateway, process, report


async def hammer(
    url: str, form: dict[str, str], requests: int, concurrency: int, new_connections: bool = False
) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=new_connections)
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
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--new-connections", action="store_true", help="a new connection for every request"
    )
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    args, _other = parser.parse_known_args(argv)  # run-benchmarks passes its args to every bench
    requests = 50 if args.quick else args.requests
    rounds = 1 if args.quick else args.rounds
    rates: dict[str, list[float]] = {"simhive": [], "bare": []}
    cpu: dict[str, list[float]] = {"simhive": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="simhive-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        argv_bare = [sys.executable, "-m", "bench._bare", str(port)]
        with gateway(workdir) as gw, process(argv_bare, port, workdir / "bare.log") as bare:
            form = {"token": gw.token, "sendto": "+49 157 52982212", "body": "Your code: 123456",
                    "device_id": str(gw.device_id), "sim": "0"}  # fmt: skip
            targets = {"simhive": (gw.url, gw.pid), "bare": (f"http://127.0.0.1:{port}", bare.pid)}
            # AB BA AB ...: see the module docstring.
            for index in range(rounds):
                order = list(targets) if index % 2 == 0 else list(reversed(targets))
                for name in order:
                    url, pid = targets[name]
                    before = cpu_seconds(pid)
                    rate = hammer(url, form, requests, args.concurrency, args.new_connections)
                    rates[name].append(asyncio.run(rate))
                    used = cpu_seconds(pid) - before
                    cpu[name].append(used / (requests + min(200, requests)) * 1e6)
            with sqlite3.connect(gw.db) as check:
                stored = check.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            expected = rounds * (requests + min(200, requests))
            if stored != expected:
                raise RuntimeError(f"expected {expected} stored messages, found {stored}")
    simhive_rate = statistics.median(rates["simhive"])
    bare_rate = statistics.median(rates["bare"])
    simhive_cpu = statistics.median(cpu["simhive"])
    bare_cpu = statistics.median(cpu["bare"])
    paired = [a / b for a, b in zip(rates["simhive"], rates["bare"], strict=True)]
    ratio = statistics.median(paired)
    cpu_ratio = bare_cpu / simhive_cpu if simhive_cpu else float("nan")
    report(
        f"addsms ({rounds} rounds x {requests} requests, {args.concurrency} concurrent clients,"
        f"{' a new connection per request,' if args.new_connections else ''} medians)",
        [
            ("simhive addsms (real server, durable)", simhive_rate, "req/s"),
            ("baseline bare aiohttp handler", bare_rate, "req/s"),
            ("ratio simhive / baseline (median of paired rounds)", ratio, "x"),
            ("  lowest paired round", min(paired), "x"),
            ("  highest paired round", max(paired), "x"),
            ("simhive server CPU per request", simhive_cpu, "us"),
            ("baseline server CPU per request", bare_cpu, "us"),
            ("CPU-bound rate ratio (baseline CPU / simhive CPU)", cpu_ratio, "x"),
        ],
    )
    return {"server": simhive_rate, "baseline": bare_rate, "ratio": ratio, "cpu_ratio": cpu_ratio}


if __name__ == "__main__":
    main()
