"""The PostgreSQL twin of sqlite_campaigns.py (tables of pg_schema migration 16), mixed into
PgStore; rows are read with the same readers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from simhive.server.core.campaign_models import (
    FINISHED,
    RUNNING,
    SCHEDULED,
    Campaign,
    CampaignCounts,
    CampaignRecipient,
    NewCampaign,
)
from simhive.server.core.errors import AlreadyExists, Conflict, NotFound
from simhive.server.store.campaigns_base import counts_of
from simhive.server.store.sqlite_campaigns import _SENT_FAIL, CAMPAIGN_COLS, _campaign_row, _vars

T = TypeVar("T")
Conn = asyncpg.Connection


class PgCampaignStore:
    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Conn], Awaitable[T]]) -> T: ...

        async def _all(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def create_campaign(
        self,
        campaign: NewCampaign,
        recipients: Sequence[CampaignRecipient],
        refused: Sequence[tuple[CampaignRecipient, str]],
        now: int,
    ) -> Campaign:
        c = campaign

        async def op(conn: Conn) -> int:
            try:
                campaign_id = int(
                    await conn.fetchval(
                        "INSERT INTO campaigns(account_id, key_id, name, state, text, template_id,"
                        " variables, pool, device_id, sim, priority, validity_minutes, send_at,"
                        " created, recipients, group_ids) VALUES ($1, $2, $3, $4, $5, $6, $7,"
                        " $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
                        c.account_id,
                        c.key_id,
                        c.name,
                        SCHEDULED,
                        c.text,
                        c.template_id,
                        json.dumps(c.variables),
                        c.pool,
                        c.device_id,
                        c.sim,
                        c.priority,
                        c.validity_minutes,
                        c.send_at,
                        now,
                        len(recipients) + len(refused),
                        json.dumps(list(c.group_ids)),
                    )  # fmt: skip
                )
            except asyncpg.UniqueViolationError:
                raise AlreadyExists(
                    f"A campaign named {c.name!r} exists already", details={"field": "name"}
                ) from None
            await conn.executemany(
                "INSERT INTO campaign_recipients(campaign_id, idx, number, variables, error_code)"
                " VALUES ($1, $2, $3, $4, $5)",
                [(campaign_id, r.index, r.number, _vars(r), None) for r in recipients]
                + [(campaign_id, r.index, r.number, _vars(r), code) for r, code in refused],
            )
            return campaign_id

        campaign_id = await self._write(op)
        found = await self.campaign_by_id(c.account_id, campaign_id)
        assert found is not None
        return found

    async def campaign_by_id(self, account_id: int, campaign_id: int) -> Campaign | None:
        rows = await self._all(
            f"SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = $1 AND account_id = $2",
            campaign_id, account_id,
        )  # fmt: skip
        return _campaign_row(rows[0]) if rows else None

    async def list_campaigns(
        self, account_id: int, created_from: int | None, created_to: int | None
    ) -> list[Campaign]:
        rows = await self._all(
            f"SELECT {CAMPAIGN_COLS} FROM campaigns WHERE account_id = $1"
            " AND created >= $2 AND created <= $3 ORDER BY id DESC",
            account_id, created_from or 0, created_to if created_to is not None else 2**62,
        )  # fmt: skip
        return [_campaign_row(r) for r in rows]

    async def set_campaign_state(
        self,
        account_id: int,
        campaign_id: int,
        allowed: Sequence[str],
        state: str,
        now: int,
        reason: str | None = None,
    ) -> Campaign:
        async def op(conn: Conn) -> None:
            done = await conn.execute(
                "UPDATE campaigns SET state = $1, reason = $2,"
                " started = CASE WHEN $1 = 'running' THEN COALESCE(started, $3) ELSE started END,"
                " finished = CASE WHEN $1 IN ('finished', 'cancelled') THEN $3 ELSE finished END"
                " WHERE id = $4 AND account_id = $5 AND state = ANY($6::text[])",
                state, reason, now, campaign_id, account_id, list(allowed),
            )  # fmt: skip
            if str(done).split()[-1] != "0":
                return
            found = await conn.fetchval(
                "SELECT state FROM campaigns WHERE id = $1 AND account_id = $2",
                campaign_id, account_id,
            )  # fmt: skip
            if found is None:
                raise NotFound("Campaign not found")
            raise Conflict(
                f"The campaign is {found}: it cannot be {state}",
                details={"state": found, "allowed_from": list(allowed)},
            )

        await self._write(op)
        found = await self.campaign_by_id(account_id, campaign_id)
        assert found is not None
        return found

    async def campaigns_to_run(self, now: int) -> list[Campaign]:
        due = await self._all(
            "SELECT 1 FROM campaigns WHERE state = $1 AND COALESCE(send_at, 0) <= $2 LIMIT 1",
            SCHEDULED, now,
        )  # fmt: skip
        if due:  # read first: no write each tick when nothing starts

            async def op(conn: Conn) -> None:
                await conn.execute(
                    "UPDATE campaigns SET state = $1, started = $2"
                    " WHERE state = $3 AND COALESCE(send_at, 0) <= $2",
                    RUNNING, now, SCHEDULED,
                )  # fmt: skip

            await self._write(op)
        rows = await self._all(
            f"SELECT {CAMPAIGN_COLS} FROM campaigns WHERE state = $1 ORDER BY id", RUNNING
        )
        return [_campaign_row(r) for r in rows]

    async def campaign_batch(self, campaign_id: int, limit: int) -> list[CampaignRecipient]:
        rows = await self._all(
            "SELECT idx, number, variables FROM campaign_recipients WHERE campaign_id = $1"
            " AND sms_id IS NULL AND error_code IS NULL ORDER BY idx LIMIT $2",
            campaign_id, limit,
        )  # fmt: skip
        return [CampaignRecipient(int(i), str(n), dict(json.loads(v or "{}"))) for i, n, v in rows]

    async def campaign_inflight(self, campaign_id: int) -> list[int]:
        rows = await self._all(
            "SELECT m.id FROM campaign_recipients r JOIN messages m ON m.id = r.sms_id"
            " WHERE r.campaign_id = $1 AND r.sms_id IS NOT NULL AND m.status IN (1, 2, 3)"
            " ORDER BY m.id",
            campaign_id,
        )
        return [int(r[0]) for r in rows]

    async def record_released(
        self, campaign_id: int, results: Sequence[tuple[int, int | None, str | None]]
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.executemany(
                "UPDATE campaign_recipients SET sms_id = $1, error_code = $2"
                " WHERE campaign_id = $3 AND idx = $4",
                [(sms_id, code, campaign_id, index) for index, sms_id, code in results],
            )

        await self._write(op)

    async def finish_campaign(self, campaign_id: int, now: int) -> bool:
        async def op(conn: Conn) -> bool:
            last = await conn.fetchval(
                "SELECT MAX(m.status_changed) FROM campaign_recipients r"
                " JOIN messages m ON m.id = r.sms_id WHERE r.campaign_id = $1",
                campaign_id,
            )
            done = await conn.execute(
                "UPDATE campaigns SET state = $1, finished = $2 WHERE id = $3 AND state = $4",
                FINISHED, last if last is not None else now, campaign_id, RUNNING,
            )  # fmt: skip
            return str(done).split()[-1] != "0"

        return await self._write(op)

    async def campaign_counts(self, campaign_id: int) -> CampaignCounts:
        def n(cond: str) -> str:  # SQLite sums booleans; PostgreSQL counts the rows that hold
            return f" COUNT(*) FILTER (WHERE {cond})"

        rows = await self._all(
            "SELECT MIN(c.state),"
            + n("r.sms_id IS NULL AND r.error_code IS NULL") + ","
            + n("m.status IN (1, 2, 3)") + "," + n("m.status = 6") + "," + n("m.status = 7") + ","
            + n("m.status = 8") + ","
            + n(f"m.status IN {_SENT_FAIL} OR (r.sms_id IS NULL AND r.error_code IS NOT NULL)")
            + "," + n("m.status = 20") + ", MAX(m.status_changed)"
            " FROM campaigns c JOIN campaign_recipients r ON r.campaign_id = c.id"
            " LEFT JOIN messages m ON m.id = r.sms_id WHERE c.id = $1",
            campaign_id,
        )  # fmt: skip
        return counts_of(rows[0] if rows else None)
