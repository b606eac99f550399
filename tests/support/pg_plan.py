"""What a PostgreSQL store statement costs, counted from EXPLAIN (ANALYZE, BUFFERS): buffers
touched and rows read, counts that do not move with the machine's load as times do.

`capture` records the statements a PgStore reads through `_all` (the pull check is one), so a
test or a benchmark explains the store's own SQL with its own parameters, not a copy of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from simhive.server.store.pg import PgStore


@dataclass(frozen=True)
class PlanCost:
    buffers: int  # shared buffers hit or read by the whole statement (InitPlans included)
    rows: int  # rows of `table` the scans produced or threw away, over all their loops


def capture(store: PgStore) -> list[tuple[str, tuple[Any, ...]]]:
    """From now on, every (sql, args) the store reads through `_all`, in order."""
    seen: list[tuple[str, tuple[Any, ...]]] = []
    read = store._all

    async def recording(sql: str, *args: Any) -> list[asyncpg.Record]:
        seen.append((sql, args))
        return await read(sql, *args)

    store._all = recording  # type: ignore[method-assign]
    return seen


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def plan_cost(plan: dict[str, Any], table: str = "messages") -> PlanCost:
    top = plan["Plan"]
    rows = 0
    for node in _nodes(top):
        if node.get("Relation Name") != table:
            continue
        # "Rows Removed by ..." are per loop, like "Actual Rows".
        per_loop = (
            node["Actual Rows"]
            + node.get("Rows Removed by Filter", 0)
            + node.get("Rows Removed by Index Recheck", 0)
        )
        rows += round(per_loop * node["Actual Loops"])
    return PlanCost(top["Shared Hit Blocks"] + top["Shared Read Blocks"], rows)


def _literal(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | list):
        raise TypeError(f"only ints and lists of ints are written out here, not {value!r}")
    if isinstance(value, list):
        return "'{" + ",".join(str(int(v)) for v in value) + "}'"
    return str(value)


async def explain(
    conn: asyncpg.Connection, sql: str, args: tuple[Any, ...], *, generic: bool = False
) -> PlanCost:
    """Runs `sql` under EXPLAIN (ANALYZE, BUFFERS) on `conn` and counts what it touched.

    generic: the plan made without the parameters' values, which PostgreSQL switches a
    prepared statement to after five runs when it costs no more than theirs (asyncpg prepares
    every statement; the args are then ints or lists of ints)."""
    if not generic:
        text = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
    else:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE explained AS " + sql)
        try:
            text = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE explained("
                + ", ".join(_literal(a) for a in args) + ")"
            )  # fmt: skip
        finally:
            await conn.execute("DEALLOCATE explained")
            await conn.execute("RESET plan_cache_mode")
    [plan] = json.loads(text)
    return plan_cost(plan)
