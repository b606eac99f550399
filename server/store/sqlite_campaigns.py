"""SQLite implementation of CampaignStore (tables of the campaigns migration), mixed into
SqliteStore: it needs the store's `writer` and `_all`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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
from simhive.server.store.campaigns_base import CampaignStore, counts_of
from simhive.server.store.sqlite_rows import columns, row_reader

if TYPE_CHECKING:
    from simhive.server.store.writer import GroupCommitWriter

CAMPAIGN_COLS = columns(Campaign)
_campaign_row = row_reader(
    Campaign,
    variables=lambda v: dict(json.loads(v or "{}")),
    group_ids=lambda v: tuple(int(x) for x in json.loads(v or "[]")),
)
_SENT_FAIL = "(9, 10, 11, 12, 100, 101, 21)"  # never left a SIM, or expired before


def _vars(recipient: CampaignRecipient) -> str | None:
    return json.dumps(recipient.variables) if recipient.variables else None


class SqliteCampaignStore(CampaignStore):
    writer: GroupCommitWriter

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # provided by SqliteStore

    async def create_campaign(
        self,
        campaign: NewCampaign,
        recipients: Sequence[CampaignRecipient],
        refused: Sequence[tuple[CampaignRecipient, str]],
        now: int,
    ) -> Campaign:
        c = campaign

        def op(conn: sqlite3.Connection) -> int:
            try:
                cur = conn.execute(
                    "INSERT INTO campaigns(account_id, key_id, name, state, text, template_id,"
                    " variables, pool, device_id, sim, priority, validity_minutes, send_at,"
                    " created, recipients, group_ids)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (c.account_id, c.key_id, c.name, SCHEDULED, c.text, c.template_id,
                     json.dumps(c.variables), c.pool, c.device_id, c.sim, c.priority,
                     c.validity_minutes, c.send_at, now, len(recipients) + len(refused),
                     json.dumps(list(c.group_ids))),
                )  # fmt: skip
            except sqlite3.IntegrityError:
                raise AlreadyExists(
                    f"A campaign named {c.name!r} exists already", details={"field": "name"}
                ) from None
            campaign_id = int(cur.lastrowid or 0)
            conn.executemany(
                "INSERT INTO campaign_recipients(campaign_id, idx, number, variables, error_code)"
                " VALUES (?, ?, ?, ?, ?)",
                [(campaign_id, r.index, r.number, _vars(r), None) for r in recipients]
                + [(campaign_id, r.index, r.number, _vars(r), code) for r, code in refused],
            )
            return campaign_id

        campaign_id = await self.writer.submit(op)
        found = await self.campaign_by_id(c.account_id, campaign_id)
        assert found is not None
        return found

    async def campaign_by_id(self, account_id: int, campaign_id: int) -> Campaign | None:
        rows = await self._all(
            f"SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = ? AND account_id = ?",
            (campaign_id, account_id),
        )
        return _campaign_row(rows[0]) if rows else None

    async def list_campaigns(
        self, account_id: int, created_from: int | None, created_to: int | None
    ) -> list[Campaign]:
        rows = await self._all(
            f"SELECT {CAMPAIGN_COLS} FROM campaigns WHERE account_id = ?"
            " AND created >= ? AND created <= ? ORDER BY id DESC",
            (account_id, created_from or 0, created_to if created_to is not None else 2**62),
        )
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
        marks = ", ".join("?" for _ in allowed)

        def op(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE campaigns SET state = ?, reason = ?,"
                " started = CASE WHEN ? = 'running' THEN COALESCE(started, ?) ELSE started END,"
                " finished = CASE WHEN ? IN ('finished', 'cancelled') THEN ? ELSE finished END"
                f" WHERE id = ? AND account_id = ? AND state IN ({marks})",
                (state, reason, state, now, state, now, campaign_id, account_id, *allowed),
            )
            if cur.rowcount:
                return
            row = conn.execute(
                "SELECT state FROM campaigns WHERE id = ? AND account_id = ?",
                (campaign_id, account_id),
            ).fetchone()
            if row is None:
                raise NotFound("Campaign not found")
            raise Conflict(
                f"The campaign is {row[0]}: it cannot be {state}",
                details={"state": row[0], "allowed_from": list(allowed)},
            )

        await self.writer.submit(op)
        found = await self.campaign_by_id(account_id, campaign_id)
        assert found is not None
        return found

    async def campaigns_to_run(self, now: int) -> list[Campaign]:
        due = await self._all(
            "SELECT 1 FROM campaigns WHERE state = ? AND COALESCE(send_at, 0) <= ? LIMIT 1",
            (SCHEDULED, now),
        )
        if due:  # read first: no write each tick when nothing starts

            def op(conn: sqlite3.Connection) -> None:
                conn.execute(
                    "UPDATE campaigns SET state = ?, started = ?"
                    " WHERE state = ? AND COALESCE(send_at, 0) <= ?",
                    (RUNNING, now, SCHEDULED, now),
                )

            await self.writer.submit(op, atomic=True)
        rows = await self._all(
            f"SELECT {CAMPAIGN_COLS} FROM campaigns WHERE state = ? ORDER BY id", (RUNNING,)
        )
        return [_campaign_row(r) for r in rows]

    async def campaign_batch(self, campaign_id: int, limit: int) -> list[CampaignRecipient]:
        rows = await self._all(
            "SELECT idx, number, variables FROM campaign_recipients WHERE campaign_id = ?"
            " AND sms_id IS NULL AND error_code IS NULL ORDER BY idx LIMIT ?",
            (campaign_id, limit),
        )
        return [CampaignRecipient(int(i), str(n), dict(json.loads(v or "{}"))) for i, n, v in rows]

    async def campaign_inflight(self, campaign_id: int) -> list[int]:
        rows = await self._all(
            "SELECT m.id FROM campaign_recipients r JOIN messages m ON m.id = r.sms_id"
            " WHERE r.campaign_id = ? AND r.sms_id IS NOT NULL AND m.status IN (1, 2, 3)",
            (campaign_id,),
        )
        return [int(r[0]) for r in rows]

    async def record_released(
        self, campaign_id: int, results: Sequence[tuple[int, int | None, str | None]]
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE campaign_recipients SET sms_id = ?, error_code = ?"
                " WHERE campaign_id = ? AND idx = ?",
                [(sms_id, code, campaign_id, index) for index, sms_id, code in results],
            )

        await self.writer.submit(op)

    async def finish_campaign(self, campaign_id: int, now: int) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            last = conn.execute(
                "SELECT MAX(m.status_changed) FROM campaign_recipients r"
                " JOIN messages m ON m.id = r.sms_id WHERE r.campaign_id = ?",
                (campaign_id,),
            ).fetchone()[0]
            cur = conn.execute(
                "UPDATE campaigns SET state = ?, finished = ? WHERE id = ? AND state = ?",
                (FINISHED, last if last is not None else now, campaign_id, RUNNING),
            )
            return cur.rowcount > 0

        return await self.writer.submit(op)

    async def campaign_counts(self, campaign_id: int) -> CampaignCounts:
        rows = await self._all(
            "SELECT c.state,"
            " SUM(r.sms_id IS NULL AND r.error_code IS NULL),"
            " SUM(m.status IN (1, 2, 3)), SUM(m.status = 6), SUM(m.status = 7),"
            " SUM(m.status = 8),"
            f" SUM(m.status IN {_SENT_FAIL} OR (r.sms_id IS NULL AND r.error_code IS NOT NULL)),"
            " SUM(m.status = 20), MAX(m.status_changed)"
            " FROM campaigns c JOIN campaign_recipients r ON r.campaign_id = c.id"
            " LEFT JOIN messages m ON m.id = r.sms_id WHERE c.id = ?",
            (campaign_id,),
        )
        return counts_of(rows[0] if rows else None)
