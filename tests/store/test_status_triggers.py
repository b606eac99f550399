"""SQLite's status triggers (webhooks, account webhooks, SMPP receipts): which statuses they fire
for, and what a status change costs the writer.

Every status change of every message runs these triggers. Their conditions test ranges of
statuses: an IN list of more than two values made SQLite build and fill a temporary b-tree each
time a trigger ran, three per status change (sqlite_schema.py migration 24).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from simhive.server.core.status import Status
from simhive.server.store.sqlite_schema import migrate

STATUS_CHANGE = "UPDATE messages SET status = ?, status_changed = ? WHERE id = ?"

# What each trigger is for (docs/webhooks.md, docs/api.md, docs/smpp.md): a device's status
# webhook and an SMPP receipt on an outcome; an account's status webhook on an outcome or on the
# native API's own ends (cancelled, expired).
OUTCOMES = {
    Status.SENT, Status.DELIVERED, Status.NOT_DELIVERED, Status.FAILED, Status.NO_SERVICE,
    Status.NULL_PDU, Status.RADIO_OFF, Status.NOT_ALLOWED, Status.NOT_ALLOWED_AT_ALL,
}  # fmt: skip
WEBHOOK = OUTCOMES
ACCOUNT_WEBHOOK = OUTCOMES | {Status.CANCELLED, Status.EXPIRED}
SMPP_RECEIPT = OUTCOMES - {Status.SENT}  # a receipt tells the final outcome


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
    migrate(db)
    db.executescript(
        """
        INSERT INTO accounts(id, email, password_hash, created) VALUES (1, 'a@example.com', 'x', 1);
        INSERT INTO devices(id, account_id, title, token_hash, created, webhook_status)
            VALUES (1, 1, 'm1', 'h', 1, 'http://127.0.0.1:9/status');
        INSERT INTO account_webhooks(account_id, url_status, updated)
            VALUES (1, 'http://127.0.0.1:9/a-status', 1);
        """
    )
    return db


def test_a_status_change_builds_no_temporary_table(conn: sqlite3.Connection) -> None:
    # EXPLAIN lists the statement's program and then each trigger's.
    program = conn.execute(f"EXPLAIN {STATUS_CHANGE}", (7, 1, 1)).fetchall()
    triggers = [str(op[5]) for op in program if op[1] == "Init" and str(op[5]).startswith("--")]
    assert len(triggers) == 4  # the three above and the status history
    assert [op for op in program if op[1] in ("OpenEphemeral", "OpenAutoindex")] == []


@pytest.mark.parametrize("status", sorted(set(Status) - {Status.NEW, Status.INCOMING}))
def test_each_trigger_fires_for_its_statuses_only(conn: sqlite3.Connection, status: int) -> None:
    sms_id = conn.execute(
        "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status,"
        " created, due, status_changed) VALUES (1, 1, 'out', '+4917', 'x', 0, 1, 1, 1, 1)"
    ).lastrowid
    conn.execute(
        "INSERT INTO smpp_submits(account_id, smpp_id, registered_delivery, source_addr,"
        " dest_addr, created, sms_id) VALUES (1, 'smpp-1', 1, 'simhive', '+4917', 1, ?)",
        (sms_id,),
    )
    conn.execute(STATUS_CHANGE, (int(status), 2, sms_id))

    def rows(table: str) -> int:
        (n,) = conn.execute(f"SELECT count(*) FROM {table} WHERE sms_id = ?", (sms_id,)).fetchone()
        return int(n)

    fired = {
        "webhook": rows("webhook_outbox"),
        "account webhook": rows("account_webhook_outbox"),
        "smpp receipt": rows("smpp_outbox"),
    }
    assert fired == {
        "webhook": int(status in WEBHOOK),
        "account webhook": int(status in ACCOUNT_WEBHOOK),
        "smpp receipt": int(status in SMPP_RECEIPT),
    }
