"""The journal's tables. `CREATE ... IF NOT EXISTS`, so a journal written by an older agent
gains the new tables at the next start and keeps everything it holds; a change to an existing
table is a step in `upgrade()`, run once at open inside one transaction."""

from __future__ import annotations

import sqlite3

# Every state an outbox row can be in; `releasing`: a pool message being handed back to the
# server (never dispatched; deleted once the server has it). The CHECK spells them out as
# `state = ... OR ...`: SQLite compiles an IN list of more than two values into a temporary
# b-tree that it builds again for every statement writing the column, which doubled the cost of
# a state change (4 -> 8 us).
STATES = ("leased", "committed", "releasing", "dispatching", "sent", "failed", "unknown",
          "delivered", "not_delivered")  # fmt: skip
_STATE_CHECK = " OR ".join(f"state = '{state}'" for state in STATES)
# `pool`: the pool a message was leased from (NULL: pinned to its SIM).
OUTBOX = f"""
CREATE TABLE IF NOT EXISTS outbox (
    device      TEXT NOT NULL,
    id          INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    to_number   TEXT NOT NULL,
    body        TEXT NOT NULL,
    urgent      INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL CHECK ({_STATE_CHECK}),
    lease_id    TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    last_error  TEXT,
    pool        TEXT,
    PRIMARY KEY (device, id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (device, state, slot, urgent, next_attempt);
"""
OUTBOX_COLUMNS = (
    "device, id, slot, to_number, body, urgent, state, lease_id, attempts, next_attempt,"
    " created, updated, last_error"
)

OTHER_TABLES = """
CREATE TABLE IF NOT EXISTS parts (
    device      TEXT NOT NULL,
    msg_id      INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    reference   INTEGER NOT NULL,
    sent_at     REAL NOT NULL,
    tp_status   INTEGER,
    PRIMARY KEY (device, msg_id, idx)
);
CREATE INDEX IF NOT EXISTS parts_ref ON parts (device, slot, reference, sent_at);
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    device      TEXT NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('report', 'status')),
    event_id    TEXT NOT NULL,
    body        TEXT NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    UNIQUE (device, channel, event_id)
);
CREATE INDEX IF NOT EXISTS events_pending ON events (device, channel, done, seq);
CREATE TABLE IF NOT EXISTS inbox (
    device      TEXT NOT NULL,
    key         TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    sender      TEXT NOT NULL,
    body        TEXT NOT NULL,
    sent_at     TEXT,
    received_at TEXT NOT NULL,
    parts       INTEGER NOT NULL,
    incomplete  INTEGER NOT NULL,
    forwarded   INTEGER NOT NULL DEFAULT 0,
    sms_id      INTEGER,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (device, key)
);
CREATE INDEX IF NOT EXISTS inbox_pending ON inbox (device, forwarded, seq);
-- Status reports that matched no journaled part yet (their send is still being journaled, or
-- it never will be). Written before the handler returns, so before the modem acks (CNMA) or
-- deletes (CMGD) the report: a kill -9 cannot lose one.
CREATE TABLE IF NOT EXISTS held_reports (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    device      TEXT NOT NULL,
    slot        INTEGER NOT NULL,
    reference   INTEGER NOT NULL,
    recipient   TEXT NOT NULL,
    tp_status   INTEGER NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS held_reports_device ON held_reports (device, seq);
"""
SCHEMA = OUTBOX + OTHER_TABLES


def upgrade(conn: sqlite3.Connection) -> bool:
    """Bring an outbox written by an older agent up to date; True if it did.

    Two older forms: from before pools (no `pool` column, no 'releasing' state), and one whose
    state CHECK was an IN list (see STATES). SQLite cannot change a CHECK constraint in place,
    so the table is rebuilt: renamed, created anew, copied, the old one dropped (with its index,
    which is then created again). Run inside the caller's transaction: a crash half-way leaves
    the old table as it was.
    """
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'")
    sql = row.fetchone()
    if sql is None or "state IN (" not in str(sql[0]):
        return False
    had = {str(r[1]) for r in conn.execute("PRAGMA table_info(outbox)")}
    columns = OUTBOX_COLUMNS + (", pool" if "pool" in had else "")
    conn.execute("ALTER TABLE outbox RENAME TO outbox_before_upgrade")
    for stmt in OUTBOX.split(";"):
        if stmt.strip().startswith("CREATE TABLE"):
            conn.execute(stmt)
    conn.execute(f"INSERT INTO outbox ({columns}) SELECT {columns} FROM outbox_before_upgrade")
    conn.execute("DROP TABLE outbox_before_upgrade")
    for stmt in OUTBOX.split(";"):
        if stmt.strip().startswith("CREATE INDEX"):
            conn.execute(stmt)
    return True
