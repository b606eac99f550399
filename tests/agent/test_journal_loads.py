"""The SIMs' loads kept in memory (agent/journal/loads.py) against the journal's own rows."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from typing import Any

import pytest

from simhive.agent.journal import Journal, LeasedMessage, SlotLoad

DEVICES = ("d1", "d2")


def truth(journal: Journal, device: str) -> dict[int, SlotLoad]:
    """The loads as the journal's committed rows say, on a connection of its own."""
    with sqlite3.connect(journal.path) as conn:
        rows = conn.execute(
            "SELECT slot, sum(state != 'releasing'), count(*) FROM outbox WHERE device = ?"
            " AND state IN ('leased', 'committed', 'releasing') GROUP BY slot",
            (device,),
        ).fetchall()
    return {int(s): SlotLoad(int(h), int(q)) for s, q, h in rows}


def msg(i: int, rnd: random.Random) -> LeasedMessage:
    return LeasedMessage(id=i, to=f"+4915100000{i:03d}", body=f"m{i}", sim=rnd.randrange(2),
                         urgent=False, pool=rnd.choice([None, "all"]))  # fmt: skip


async def state_of(journal: Journal, device: str) -> dict[str, list[tuple[int, int, str]]]:
    def fetch(conn: sqlite3.Connection) -> list[Any]:
        return conn.execute(
            "SELECT id, slot, state, lease_id FROM outbox WHERE device = ?", (device,)
        ).fetchall()

    rows = await journal.store.read(fetch)
    out: dict[str, list[tuple[int, int, str]]] = {}
    for i, slot, state, lease in rows:
        out.setdefault(state, []).append((int(i), int(slot), str(lease)))
    return out


@pytest.mark.parametrize("seed", range(6))
async def test_kept_loads_match_the_rows_after_any_sequence_of_writes(
    journal: Journal, seed: int
) -> None:
    rnd = random.Random(seed)
    next_id = 1
    leases: dict[str, list[str]] = {d: [] for d in DEVICES}
    for _step in range(120):
        dev = rnd.choice(DEVICES)
        rows = await state_of(journal, dev)
        pick = rnd.random()
        now = 1000.0 + _step
        pending: list[asyncio.Future[Any]] = []
        if pick < 0.25:
            lease = f"L{_step}"
            batch = [msg(next_id + k, rnd) for k in range(rnd.randrange(1, 5))]
            next_id += len(batch)
            held = rows.get("leased", []) + rows.get("committed", [])
            if held and rnd.random() < 0.3:  # a re-lease of one already held
                i, slot, _ = rnd.choice(held)
                batch.append(LeasedMessage(i, "+49151", "again", slot, False, "all"))
            ids = await journal.add_leased(dev, lease, batch, now)
            leases[dev].append(lease)
            if rnd.random() < 0.5:
                keep = [i for i in ids if rnd.random() < 0.7]
                await journal.apply_commit(dev, lease, keep, [i for i in ids if i not in keep])
        elif pick < 0.45 and (rows.get("committed") or rows.get("leased")):
            i, slot, lease = rnd.choice(rows.get("committed", []) + rows.get("leased", []))
            known_slot = slot if rnd.random() < 0.8 else None
            await journal.begin_dispatch(dev, i, now, claimed_lease=lease, slot=known_slot)
        elif pick < 0.55 and rows.get("dispatching"):
            i, slot, _ = rnd.choice(rows["dispatching"])
            if rnd.random() < 0.6:
                pending.append(journal.finish_sent_nowait(dev, i, slot, [i % 256], now))
            elif rnd.random() < 0.5:
                await journal.finish_retry(dev, i, now, "retry", now)
            else:
                await journal.finish_failed(dev, i, status=9, code="", reason="x", now=now)
        elif pick < 0.65 and rows.get("leased"):
            chosen = rnd.sample(rows["leased"], min(3, len(rows["leased"])))
            yes = [(i, lease) for i, _s, lease in chosen if rnd.random() < 0.6]
            no = [(i, lease) for i, _s, lease in chosen if (i, lease) not in yes]
            pending.append(journal.settle_claims_nowait(dev, yes, no))
        elif pick < 0.72:
            ids = await journal.mark_releasing(dev, [rnd.randrange(2)], "down", now)
            if ids and rnd.random() < 0.7:
                gone = [i for i in ids if rnd.random() < 0.5]
                await journal.apply_release(dev, gone, [i for i in ids if i not in gone], now)
        elif pick < 0.77 and leases[dev]:
            await journal.drop_lease(dev, rnd.choice(leases[dev]))
        elif pick < 0.80:
            await journal.fail_foreign_slots(dev, [0], now)
        elif pick < 0.85:
            await journal.defer_claims(dev, [0, 1], now + 5)
        # Looks while writes are still queued or committing, and after they settle.
        for d in DEVICES:
            await journal.slot_loads(d)
        for fut in pending:
            await fut
        for d in DEVICES:
            assert await journal.slot_loads(d) == truth(journal, d), (seed, _step, d)
    assert journal.loads.reads_saved > 100  # memory answered most looks


async def test_a_known_load_is_answered_without_reading_the_journal(journal: Journal) -> None:
    batch = [LeasedMessage(i, "+4915100", f"m{i}", i % 2, False, "all") for i in range(1, 6)]
    await journal.add_leased("d1", "L1", batch, 100.0)
    first = await journal.slot_loads("d1")
    assert first == {0: SlotLoad(2, 2), 1: SlotLoad(3, 3)}
    statements: list[str] = []
    conn = journal.store._rconn
    assert conn is not None
    conn.set_trace_callback(statements.append)
    await journal.begin_dispatch("d1", 1, 101.0, claimed_lease="L1", slot=1)
    await journal.finish_sent_nowait("d1", 1, 1, [7], 102.0)
    await journal.add_leased("d1", "L2", [LeasedMessage(9, "+49", "n", 0, False, "all")], 103.0)
    assert await journal.slot_loads("d1") == {0: SlotLoad(3, 3), 1: SlotLoad(2, 2)}
    assert statements == []  # no read: the writes kept the loads current
    assert truth(journal, "d1") == {0: SlotLoad(3, 3), 1: SlotLoad(2, 2)}
