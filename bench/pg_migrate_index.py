"""What an upgrade to migration 23 costs the servers still writing: the index built in the
migration's transaction (the old way) against CREATE INDEX CONCURRENTLY (pg_index_build.py).

A schema at version 22 with MESSAGES rows in `messages` (1 in 50 leased, so the partial index
holds some); WRITERS tasks insert one message per statement, as addsms does, the whole time;
once they have run for BEFORE seconds alone, the migration to 23 runs, then the writers stop.
Printed per way, medians of alternating rounds (the index dropped and version 23 forgotten
between them): the migration's time, the inserts finished per second while it ran and in the
BEFORE seconds before it, and the longest insert that overlapped it, which for the old way is
about the build: every insert waits for it. Runs on a scratch database of the PostgreSQL the
tests use (tests/support/pg.py).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from simhive.server.store import pg_schema
from tests.support.pg import pg_server, scratch_database

WRITERS = 4
BEFORE = 1.0  # seconds of writing alone before each migration, for the rate without one
INDEX = "messages_device_leases"
INSERT = (
    "INSERT INTO messages(account_id, device_id, sendto, body, created, due, status_changed)"
    " VALUES (1, 1, '+4915752982212', 'during', 1, 1, 1)"
)
SEED = """
INSERT INTO accounts(id, email, password_hash, created) VALUES (1, 'a@b.c', 'x', 1);
INSERT INTO devices(id, account_id, title, token_hash, created)
SELECT g, 1, 'd', 't' || g, 1 FROM generate_series(1, 100) g;
INSERT INTO messages(account_id, device_id, sendto, body, status, created, due, status_changed,
                     lease_expires)
SELECT 1, 1 + g % 100, '+4915752982212', 'seeded message ' || g, CASE WHEN g % 50 = 0 THEN 2
       ELSE 3 END, g, g, g, g
FROM generate_series(1, {n}) g;
"""


async def _old_way(conn: asyncpg.Connection) -> None:
    """Migration 23 as it was: the index and the version in one transaction."""
    _, description, step = next(m for m in pg_schema.MIGRATIONS if m[0] == 23)
    assert not isinstance(step, str)
    async with conn.transaction():
        await conn.execute(step.in_transaction())
        await conn.execute(
            "INSERT INTO schema_migrations VALUES (23, $1, 0)",
            description,
        )


async def _round(url: str, way: str) -> tuple[float, float, float, float]:
    """(migration seconds, inserts finished per second while it ran, the longest insert that
    ran while it did in seconds, inserts finished per second in the BEFORE seconds before)."""
    settings = {"search_path": "bench"}
    writers = [await asyncpg.connect(url, server_settings=settings) for _ in range(WRITERS)]
    migrator = await asyncpg.connect(url, server_settings=settings)
    done = asyncio.Event()
    started = asyncio.Event()
    spans: list[tuple[float, float]] = []  # each insert's start and end

    async def write(conn: asyncpg.Connection) -> None:
        while not done.is_set():
            t = time.perf_counter()
            await conn.execute(INSERT)
            spans.append((t, time.perf_counter()))
            started.set()

    tasks = [asyncio.create_task(write(conn)) for conn in writers]
    try:
        await started.wait()
        before = time.perf_counter()
        await asyncio.sleep(BEFORE)
        begin = time.perf_counter()
        if way == "concurrent":
            assert await pg_schema.migrate(migrator) == pg_schema.LATEST_VERSION
        else:
            await _old_way(migrator)
        end = time.perf_counter()
        done.set()
        await asyncio.gather(*tasks)  # the inserts the migration held finish now
        during = [b - a for a, b in spans if a < end and b > begin]
        finished = sum(1 for _, b in spans if begin <= b <= end)
        await migrator.execute(f"DROP INDEX {INDEX}")
        await migrator.execute("DELETE FROM schema_migrations WHERE version >= 23")
        ahead = sum(1 for _, b in spans if before <= b <= begin) / (begin - before)
        return end - begin, finished / (end - begin), max(during), ahead
    finally:
        done.set()
        for conn in [*writers, migrator]:
            await conn.close()


async def bench(
    url: str, n: int, rounds: int
) -> dict[str, list[tuple[float, float, float, float]]]:
    setup = await asyncpg.connect(url)
    try:
        await setup.execute("CREATE SCHEMA bench; SET search_path = bench")
        whole = pg_schema.MIGRATIONS
        pg_schema.MIGRATIONS = [m for m in whole if m[0] <= 22]
        try:
            assert await pg_schema.migrate(setup) == 22
        finally:
            pg_schema.MIGRATIONS = whole
        await setup.execute(SEED.format(n=n))
        await setup.execute("VACUUM ANALYZE messages")
    finally:
        await setup.close()
    results: dict[str, list[tuple[float, float, float, float]]] = {"old": [], "concurrent": []}
    for i in range(rounds):
        for way in ("old", "concurrent") if i % 2 == 0 else ("concurrent", "old"):
            results[way].append(await _round(url, way))
    return results


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000, help="rows in messages")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each way")
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    args, _other = parser.parse_known_args(argv)
    n, rounds = (2_000, 2) if args.quick else (args.messages, args.rounds)
    with pg_server() as server, scratch_database(server, "simhive_bench") as url:
        results = asyncio.run(bench(url, n, rounds))
    figures: dict[str, float] = {}
    for way, rows in results.items():
        figures[f"{way}: migration s"] = statistics.median(r[0] for r in rows)
        figures[f"{way}: inserts/s during it"] = statistics.median(r[1] for r in rows)
        figures[f"{way}: longest insert s"] = statistics.median(r[2] for r in rows)
        figures[f"{way}: inserts/s before it"] = statistics.median(r[3] for r in rows)
    figures["migration time ratio concurrent/old"] = statistics.median(
        c[0] / o[0] for c, o in zip(results["concurrent"], results["old"], strict=True)
    )
    print(f"Migration 23 on {n} messages ({server.origin}), {WRITERS} writers, {rounds} rounds")
    for key, value in figures.items():
        print(f"  {key:40s} {value:12.3f}")
    return figures


if __name__ == "__main__":
    main()
