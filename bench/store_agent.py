"""The agent path's store work alone, in process: what the SQLite writer runs per SMS.

No HTTP and no agent: one SqliteStore and the calls the server's agent routes make for each SMS
through a pool of `--devices` modems, each device's calls in the order its agent makes them.
Every round, every device (concurrently, so the group-commit writer batches them as under load):
a pull (token look-up, `offer_sims`, `release_leases` of what it does not hold, `due_state_sims`,
`lease_sims` of one pool message), a commit (token look-up, `commit_lease`) and two reports
(token look-up, `apply_events` with `sent`, then with `delivered`). The clock is simulated, so
runs are repeatable.

`--count` traces the writer connection's statements and prints them per SMS by kind (BEGIN,
COMMIT, SAVEPOINT, RELEASE, the rest; a statement's triggers are not counted apart); without it
nothing is traced, for a run under `valgrind --tool=callgrind` (instructions counted whatever the
machine's load):

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        .venv/bin/python -m bench.store_agent --rounds 8

The whole run is counted (setup included; it is the same for any code under test), so compare
runs of the same arguments, before and after; the difference between 16 and 8 rounds gives the
instructions per SMS. No timing is printed: the counts are the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

from simhive.server.core.models import NewMessage, ReportEvent
from simhive.server.core.pools import SimOffer
from simhive.server.store.sqlite import SqliteStore

T0 = 1_000_000_000_000  # microseconds, as the server's clock
US = 1_000_000
LEASE_SECONDS = 120
OFFLINE_SECONDS = 300


def _kind(sql: str) -> str:
    word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return word if word in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE") else "other"


async def _cycle(
    store: SqliteStore,
    token: str,
    account_id: int,
    device_id: int,
    now: int,
    rand: random.Random,
) -> int:
    """One SMS through one device, as the agent routes call the store; returns SMS sent."""
    offers = [SimOffer(0, True, 1, 1)]
    # pull
    assert await store.device_by_token_hash(token) is not None
    await store.offer_sims(device_id, offers, now)
    await store.release_leases(device_id, now, keep=[])
    due, _ = await store.due_state_sims(device_id, account_id, offers, now)
    if not due:
        return 0
    lease, _ = await store.lease_sims(
        device_id,
        offers,
        1,
        f"L{device_id}-{now}",
        now,
        now + LEASE_SECONDS * US,
        now - OFFLINE_SECONDS * US,
        rand.random,
    )
    if not lease.messages:
        return 0
    ids = [m.id for m in lease.messages]
    # commit
    assert await store.device_by_token_hash(token) is not None
    committed, _ = await store.commit_lease(device_id, lease.lease_id, ids, now + 1)
    # reports: sent, then delivered
    for step, kind in ((2, "sent"), (3, "delivered")):
        assert await store.device_by_token_hash(token) is not None
        events = [ReportEvent(f"{kind}-{i}", i, kind, now + step) for i in committed]
        await store.apply_events(device_id, events, now + step)
    return len(committed)


async def run(devices: int, rounds: int, count: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.sqlite3")
        await store.open()
        try:
            account = await store.create_account("bench@example.com", "x", "acct", "UTC", T0)
            tokens = [f"tok{i}" for i in range(devices)]
            ids = [
                (await store.create_device(account.id, f"m{i}", tokens[i], T0)).id
                for i in range(devices)
            ]
            pool = await store.implicit_pool(account.id, None, T0)
            await store.insert_messages(
                [
                    NewMessage(account.id, None, "+4915752982212", f"sms {i}", pool_id=pool.id)
                    for i in range(devices * rounds)
                ],
                T0,
            )
            statements: Counter[str] = Counter()
            if count:
                last = [""]

                def trace(sql: str) -> None:
                    # Python's trace callback fires again, with the same text, as each trigger
                    # of the statement starts (a status UPDATE runs four): count it once.
                    if sql != last[0]:
                        statements[_kind(sql)] += 1
                    last[0] = sql

                await store.writer.submit(lambda conn: conn.set_trace_callback(trace))
            before = store.writer.stats.transactions
            rand = random.Random(7)
            sent = 0
            for r in range(rounds):
                now = T0 + (r + 1) * 10 * US
                done = await asyncio.gather(
                    *(
                        _cycle(store, tokens[i], account.id, ids[i], now + i, rand)
                        for i in range(devices)
                    )
                )
                sent += sum(done)
            transactions = store.writer.stats.transactions - before
            if count:
                await store.writer.submit(lambda conn: conn.set_trace_callback(None))
        finally:
            await store.close()
    print(f"{devices} devices x {rounds} rounds: {sent} SMS, {transactions} transactions")
    if count:
        total = sum(statements.values())
        print(f"writer statements per SMS: {total / max(sent, 1):.2f}")
        for kind in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "other"):
            print(f"  {kind:<9} {statements[kind] / max(sent, 1):.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--count", action="store_true", help="trace the writer's statements")
    parser.add_argument("--quick", action="store_true", help="4 devices, 2 rounds (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.rounds = 4, 2
    asyncio.run(run(args.devices, args.rounds, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
