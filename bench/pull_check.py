"""The pull check ("is anything due for this device, and when is the next thing due or the next
lease expiry": `due_state_sims`) on both engines, with a long queue against a short one.

- scheduled: 40 pool and 40 pinned messages scheduled for later (the baseline), then 100,000
  pool messages scheduled for later; nothing is due, so the check must find the next due time.
- leases: the device has one lease of its own and 10 scheduled messages, 2 other devices hold
  20 leased messages each (the baseline); then 63 other devices hold 100 each (the 64-modem
  batch's shape) and the device has 2,000 scheduled.

Each state is timed over the same number of checks through the store's own method (median per
check); the ratio long / short is the figure, 1 where the check seeks. Besides times, counts
that do not move with the machine's load: SQLite VM steps (a progress handler every 50
instructions, so +-50) and PostgreSQL's shared buffers touched and `messages` rows read, from
EXPLAIN (ANALYZE, BUFFERS) of the check's own statement after ANALYZE. PostgreSQL is the one
the tests use (localhost:5432 or a throwaway cluster), on a scratch database per state.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench._common import report
from simhive.server.core.models import NewMessage
from simhive.server.core.pools import SimOffer
from simhive.server.store.base import Store
from simhive.server.store.pg import PgStore
from simhive.server.store.sqlite import SqliteStore
from tests.support.pg import PgServer, pg_server, scratch_database
from tests.support.pg_plan import capture, explain

TO = "+4915752982212"
OFFERS = [SimOffer(0, True, 5, 5)]
BATCH = 5_000


@dataclass
class Sizes:
    scheduled: int
    leased_devices: int
    leased_each: int
    own_scheduled: int
    calls: int


@dataclass
class Figure:
    us: float  # median microseconds per check
    count: str  # VM steps, or buffers and rows


class Bed:
    """One store with an account, its device (SIM 0, with pool room) and the account's pool."""

    def __init__(self, store: Store, pg_url: str = "") -> None:
        self.store = store
        self.pg_url = pg_url

    async def open(self) -> None:
        await self.store.open()
        account = await self.store.create_account("a@example.com", "x", "h", "UTC", 1)
        self.account = account.id
        self.device = (await self.store.create_device(account.id, "d", "t", 1)).id
        self.pool = (await self.store.implicit_pool(account.id, None, 1)).id
        await self.store.offer_sims(self.device, OFFERS, 1)

    async def insert(self, messages: list[NewMessage]) -> None:
        for start in range(0, len(messages), BATCH):
            await self.store.insert_messages(messages[start : start + BATCH], 1)

    async def schedule_pool(self, n: int, first: int) -> None:
        await self.insert(
            [NewMessage(self.account, None, TO, f"p{i}", pool_id=self.pool, timetosend=first + i)
             for i in range(n)]
        )  # fmt: skip

    async def schedule_pinned(self, n: int, first: int) -> None:
        await self.insert(
            [NewMessage(self.account, self.device, TO, f"d{i}", timetosend=first + i,
                        urgent=i % 7 == 0) for i in range(n)]
        )  # fmt: skip

    async def lease_elsewhere(self, devices: int, each: int, expires: int) -> None:
        for _ in range(devices):
            other = await self.store.create_device(self.account, "o", uuid.uuid4().hex, 1)
            await self.insert(
                [NewMessage(self.account, other.id, TO, f"o{i}") for i in range(each)]
            )
            await self.store.lease_due(other.id, each, uuid.uuid4().hex, 2, expires)

    async def measure(self, calls: int, expected: tuple[bool, int | None]) -> Figure:
        def check() -> Awaitable[tuple[bool, int | None]]:
            return self.store.due_state_sims(self.device, self.account, OFFERS, 10)

        assert await check() == expected, await check()
        for _ in range(min(calls, 20)):  # warm caches and prepared statements first
            await check()
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            await check()
            times.append(time.perf_counter() - start)
        us = statistics.median(times) * 1e6
        return Figure(us, await self.count(check))

    async def count(self, check: Callable[[], Awaitable[object]]) -> str:
        if isinstance(self.store, SqliteStore):
            assert self.store._inline is not None
            ticks = 0

            def tick() -> int:
                nonlocal ticks
                ticks += 1
                return 0

            self.store._inline.set_progress_handler(tick, 50)
            await check()
            self.store._inline.set_progress_handler(None, 0)
            return f"{ticks * 50:,} VM steps"
        assert isinstance(self.store, PgStore)
        seen = capture(self.store)
        await check()
        del self.store._all  # the store's own method again
        [(sql, args)] = seen
        conn = await asyncpg.connect(self.pg_url, server_settings={"search_path": "public"})
        try:
            await conn.execute("ANALYZE messages")
            cost = await explain(conn, sql, args)
        finally:
            await conn.close()
        return f"{cost.buffers:,} buffers, {cost.rows:,} rows"


async def scheduled(bed: Bed, sizes: Sizes) -> tuple[Figure, Figure]:
    await bed.open()
    try:
        await bed.schedule_pool(40, 1_000)
        await bed.schedule_pinned(40, 1_000)
        short = await bed.measure(sizes.calls, (False, 1_000))
        await bed.schedule_pool(sizes.scheduled, 2_000)
        long = await bed.measure(sizes.calls, (False, 1_000))
        return short, long
    finally:
        await bed.store.close()


async def leases(bed: Bed, sizes: Sizes) -> tuple[Figure, Figure]:
    await bed.open()
    try:
        await bed.insert([NewMessage(bed.account, bed.device, TO, "mine")])
        await bed.store.lease_due(bed.device, 1, "mine", 2, 9_000)
        await bed.schedule_pinned(10, 20_000)
        await bed.lease_elsewhere(2, 20, 5_000)
        short = await bed.measure(sizes.calls, (False, 9_000))
        await bed.schedule_pinned(sizes.own_scheduled - 10, 30_000)
        await bed.lease_elsewhere(sizes.leased_devices - 2, sizes.leased_each, 5_000)
        long = await bed.measure(sizes.calls, (False, 9_000))
        return short, long
    finally:
        await bed.store.close()


async def run(
    engine: str, part: str, sizes: Sizes, folder: Path, server: PgServer
) -> tuple[Figure, Figure]:
    scenario = scheduled if part == "scheduled" else leases
    if engine == "sqlite":
        return await scenario(Bed(SqliteStore(folder / f"{part}.sqlite3")), sizes)
    with scratch_database(server, "simhive_bench") as url:
        return await scenario(Bed(PgStore(url), url), sizes)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scheduled", type=int, default=100_000, help="pool messages")
    parser.add_argument("--calls", type=int, default=200, help="checks timed per state")
    parser.add_argument("--quick", action="store_true", help="tiny run that only proves it works")
    args, _other = parser.parse_known_args(argv)
    sizes = (
        Sizes(2_000, 4, 10, 100, 5)
        if args.quick
        else Sizes(args.scheduled, 64, 100, 2_000, args.calls)
    )
    figures: dict[str, float] = {}
    with pg_server() as server, tempfile.TemporaryDirectory() as tmp:
        print(f"pull check, {sizes.calls} checks per state (PostgreSQL: {server.origin})")
        for part, long_name in (
            ("scheduled", f"{sizes.scheduled:,} pool messages scheduled"),
            ("leases", f"{(sizes.leased_devices - 2) * sizes.leased_each + 40:,} leased elsewhere,"
                       f" {sizes.own_scheduled:,} own scheduled"),
        ):  # fmt: skip
            for engine in ("sqlite", "postgresql"):
                short, long = asyncio.run(run(engine, part, sizes, Path(tmp), server))
                ratio = long.us / short.us
                figures[f"{engine} {part} ratio"] = ratio
                report(
                    f"{engine}, {part}: short queue (baseline) against {long_name}",
                    [
                        (f"short: {short.count}", short.us, "us/check"),
                        (f"long: {long.count}", long.us, "us/check"),
                        ("ratio long / short", ratio, "x"),
                    ],
                )
    return figures


if __name__ == "__main__":
    main()
