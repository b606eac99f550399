"""PostgreSQL against SQLite, and several servers on one PostgreSQL (docs/scaling.md).

1. One server on each engine, same machine, same requests: `addsms` (one durable message per
   request, 32 concurrent clients) and `addalotofsms` ingest (1,000-message batches, 4 clients),
   in alternating rounds ABBA...; the PostgreSQL/SQLite ratios are medians of paired rounds.
2. The aggregate `addsms` rate of 1, 2 and 3 servers on one PostgreSQL database, the clients
   spread evenly over the servers (the same total concurrency for every N).
3. Latency accept -> AT+CMGS with an idle agent: the agent and the client on one server (SQLite,
   and PostgreSQL), and the client on server A while the agent long-polls server B (the wake-up
   travels as NOTIFY); the three layouts run side by side and take turns sample by sample.
   Ratio cross-server / single-server p50.

PostgreSQL is the one the tests use (localhost:5432, else a throwaway cluster, tests/support/pg.py)
with its durability untouched on localhost:5432 (synchronous_commit on): every acknowledged write
is flushed, as SQLite's are (synchronous=FULL). The figures measure what this machine does, with
both engines and all servers sharing its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench._common import cli, free_port, process, report
from bench._e2e import measure_latency, percentile
from bench.server_addsms import hammer
from bench.server_ingest import ingest
from tests.support.cluster import ClusterStack
from tests.support.pg import pg_server, scratch_database
from tests.support.stack import FAST_PACING, GatewayStack

EMAIL = "bench@example.com"


def prepare(db: str) -> tuple[str, int]:
    """An account and a device on `db` (a path or a URL); (token, device id)."""
    account = cli("account", "create", "--db", db, "--email", EMAIL, "--password", "bench-pass-1")
    device = cli("device", "create", "--db", db, "--email", EMAIL, "--title", "bench")
    return str(account["token"]), int(str(device["device_id"]))


@contextlib.contextmanager
def servers(db: str, n: int, workdir: Path) -> Iterator[list[str]]:
    """n `simhive-server run` processes on `db`; their URLs."""
    with contextlib.ExitStack() as stack:
        urls = []
        for k in range(n):
            port = free_port()
            argv = [sys.executable, "-m", "simhive.server.cli", "run", "--db", db,
                    "--port", str(port), "--no-access-log"]  # fmt: skip
            stack.enter_context(process(argv, port, workdir / f"server-{k}-{port}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        yield urls


def form(token: str, device_id: int) -> dict[str, str]:
    return {"token": token, "sendto": "+49 157 52982212", "body": "Your code: 123456",
            "device_id": str(device_id), "sim": "0"}  # fmt: skip


async def spread(urls: list[str], fields: dict[str, str], requests: int, clients: int) -> float:
    """`requests` addsms spread over the servers, clients/len(urls) on each; total req/s."""
    per = requests // len(urls)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(*(hammer(u, fields, per, clients // len(urls)) for u in urls))
    return per * len(urls) / (loop.time() - start)


def engines(
    workdir: Path, pg_url: str, requests: int, batches: int, rounds: int
) -> dict[str, float]:
    sqlite_db = str(workdir / "bench.sqlite3")
    dbs = {"sqlite": sqlite_db, "postgresql": pg_url}
    auth = {name: prepare(db) for name, db in dbs.items()}
    rates: dict[str, dict[str, list[float]]] = {"addsms": {}, "ingest": {}}
    with servers(sqlite_db, 1, workdir) as [sqlite_url], servers(pg_url, 1, workdir) as [pg]:
        urls = {"sqlite": sqlite_url, "postgresql": pg}
        for index in range(rounds):
            order = list(dbs) if index % 2 == 0 else list(reversed(dbs))
            for name in order:
                token, device_id = auth[name]
                add = asyncio.run(hammer(urls[name], form(token, device_id), requests, 32))
                rates["addsms"].setdefault(name, []).append(add)
                got = asyncio.run(ingest(urls[name], token, device_id, batches, 4))
                rates["ingest"].setdefault(name, []).append(got)
    out: dict[str, float] = {}
    rows: list[tuple[str, float, str]] = []
    for kind, unit in (("addsms", "req/s"), ("ingest", "msg/s")):
        for name in dbs:
            out[f"{kind} {name}"] = statistics.median(rates[kind][name])
            rows.append((f"{kind} on {name} (median)", out[f"{kind} {name}"], unit))
        pg_rates, sqlite_rates = rates[kind]["postgresql"], rates[kind]["sqlite"]
        paired = [p / s for p, s in zip(pg_rates, sqlite_rates, strict=True)]
        out[f"{kind} ratio"] = statistics.median(paired)
        rows.append((f"ratio {kind} PostgreSQL / SQLite (paired rounds)", out[f"{kind} ratio"],
                     "x"))  # fmt: skip
    report(f"one server per engine ({rounds} rounds: {requests} addsms, {batches}x1000 ingest)",
           rows)  # fmt: skip
    return out


def cluster_sizes(
    workdir: Path, pg_url: str, requests: int, rounds: int, clients: int
) -> dict[str, float]:
    token, device_id = prepare(pg_url)
    fields = form(token, device_id)
    rates: dict[int, list[float]] = {1: [], 2: [], 3: []}
    with servers(pg_url, 3, workdir) as urls:
        for index in range(rounds):
            sizes = [1, 2, 3] if index % 2 == 0 else [3, 2, 1]
            for n in sizes:
                rates[n].append(asyncio.run(spread(urls[:n], fields, requests, clients)))
    out = {f"addsms {n} servers": statistics.median(r) for n, r in rates.items()}
    rows = [(f"aggregate addsms, {n} server(s) (median)", out[f"addsms {n} servers"], "req/s")
            for n in rates]  # fmt: skip
    for n in (2, 3):
        out[f"ratio {n}/1"] = statistics.median(
            a / b for a, b in zip(rates[n], rates[1], strict=True)
        )
        rows.append((f"ratio {n} servers / 1 server (paired rounds)", out[f"ratio {n}/1"], "x"))
    report(f"several servers on one PostgreSQL ({clients} clients spread evenly)", rows)
    return out


def latency(workdir: Path, pg_url: str, samples: int) -> dict[str, float]:
    single = GatewayStack(workdir / "lat-sqlite", modems=1, device_settings=FAST_PACING)
    layouts: list[tuple[str, GatewayStack]] = [
        ("SQLite, one server", single),
        ("PostgreSQL, one server", ClusterStack(
            workdir / "lat-pg1", db_url=pg_url, server_count=1, modems=1,
            via_balancer=False, device_settings=FAST_PACING, email="one@example.com")),
        ("PostgreSQL, addsms on A, agent polls B", ClusterStack(
            workdir / "lat-pg2", db_url=pg_url, server_count=2, modems=1, via_balancer=False,
            first_agent_server=1, device_settings=FAST_PACING, email="two@example.com")),
    ]  # fmt: skip
    # All three run at once and take turns sample by sample (in rotating order), so a change in
    # the machine's load falls on each layout alike.
    accepted: dict[str, list[float]] = {name: [] for name, _ in layouts}
    try:
        for _, stack in layouts:
            stack.start()
            stack.wait_agent_ready()
            measure_latency(stack, 3)  # warm-up
        for k in range(samples):
            for name, stack in layouts[k % 3 :] + layouts[: k % 3]:
                accepted[name] += measure_latency(stack, 1)["accept"]
    finally:
        for _, stack in layouts:
            stack.close()
    p50 = {name: percentile(values, 50) for name, values in accepted.items()}
    cross = p50["PostgreSQL, addsms on A, agent polls B"]
    rows = [(f"accept -> AT+CMGS p50, {k}", v, "ms") for k, v in p50.items()]
    rows.append(("ratio cross-server / one server (PostgreSQL)",
                 cross / p50["PostgreSQL, one server"], "x"))  # fmt: skip
    rows.append(("ratio cross-server PostgreSQL / one server SQLite",
                 cross / p50["SQLite, one server"], "x"))  # fmt: skip
    report(f"latency with an idle agent ({samples} samples each)", rows)
    return {f"p50 {k}": v for k, v in p50.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="addsms per round")
    parser.add_argument("--batches", type=int, default=20, help="ingest batches per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--clients", type=int, default=48, help="addsms clients, all servers")
    parser.add_argument("--samples", type=int, default=40, help="latency samples per layout")
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    parser.add_argument("--part", choices=("engines", "servers", "latency"), action="append",
                        help="run only these parts (repeatable) [default: all]")  # fmt: skip
    args, _other = parser.parse_known_args(argv)
    parts = set(args.part or ("engines", "servers", "latency"))
    if args.quick:
        args.requests, args.batches, args.rounds, args.samples = 60, 1, 1, 3
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="simhive-bench-") as tmp, pg_server() as server:
        print(f"PostgreSQL: {server.origin}")
        workdir = Path(tmp)
        if "engines" in parts:
            with scratch_database(server, "simhive_bench") as url:
                out |= engines(workdir, url, args.requests, args.batches, args.rounds)
        if "servers" in parts:
            with scratch_database(server, "simhive_bench") as url:
                out |= cluster_sizes(workdir, url, args.requests, args.rounds, args.clients)
        if "latency" in parts:
            with scratch_database(server, "simhive_bench") as url:
                out |= latency(workdir, url, args.samples)
    return out


if __name__ == "__main__":
    main()
