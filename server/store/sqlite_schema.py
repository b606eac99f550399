"""Versioned schema migrations for the SQLite store.

Each entry is applied once, in order, inside one transaction, and recorded in `schema_migrations`.
Never edit a released migration; append a new one. Times are INTEGER microseconds since the epoch
(UTC), so ordering and range filters are plain integer comparisons on indexes.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable

# A migration is SQL, or a function of the connection for what SQL alone cannot say.
Migration = str | Callable[[sqlite3.Connection], None]


def _pools(conn: sqlite3.Connection) -> None:
    """Migration 8: pools, and messages that may be bound to no device yet.

    A pool message is stored with no device (device_id NULL) and gets its SIM when one asks for
    work, so `messages.device_id` loses its NOT NULL. Rebuilding a table of millions of rows with
    all its indexes and triggers would take minutes; SQLite documents editing the stored CREATE
    TABLE text instead for removing a NOT NULL constraint, which changes nothing on disk.
    """
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'messages'"
    ).fetchone()
    relaxed, found = re.subn(r"(\bdevice_id\s+INTEGER)\s+NOT NULL", r"\1", sql, count=1)
    if found != 1:
        raise sqlite3.DatabaseError("migration 8: messages.device_id is not as expected")
    (version,) = conn.execute("PRAGMA schema_version").fetchone()
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute(
        "UPDATE sqlite_schema SET sql = ? WHERE type = 'table' AND name = 'messages'", (relaxed,)
    )
    conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    conn.execute("PRAGMA writable_schema = OFF")
    for statement in _statements(_POOLS_SQL):
        conn.execute(statement)


_POOLS_SQL = """
-- A pool is a named set of SIMs of one account. Kinds: 'named' (members in pool_sims), 'account'
-- (every SIM of the account, named 'all') and 'device' (the SIMs of one device, 'device:<id>');
-- the implicit ones are created on first use and their members are not listed.
CREATE TABLE pools (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL DEFAULT 'named',
    device_id  INTEGER REFERENCES devices(id),
    strategy   TEXT NOT NULL DEFAULT 'partial',
    sticky     INTEGER NOT NULL DEFAULT 0,
    cycle      INTEGER NOT NULL DEFAULT 0,   -- `full` rotation: the cycle under way
    created    INTEGER NOT NULL,
    UNIQUE (account_id, name)
);
-- Members of named pools, and the rotation counters of every pool (implicit pools get a row the
-- first time one of their SIMs takes a message). `used`: messages in the current cycle.
CREATE TABLE pool_sims (
    pool_id   INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    slot      INTEGER NOT NULL,
    weight    INTEGER NOT NULL DEFAULT 1,
    used      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pool_id, device_id, slot)
);
CREATE INDEX pool_sims_sim ON pool_sims(device_id, slot);
-- Stickiness: the SIM that last texted a recipient from a sticky pool.
CREATE TABLE pool_sticky (
    pool_id   INTEGER NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    sendto    TEXT NOT NULL,
    device_id INTEGER NOT NULL,
    slot      INTEGER NOT NULL,
    updated   INTEGER NOT NULL,
    PRIMARY KEY (pool_id, sendto)
);
-- What each SIM said in its device's latest pull: ready for work or not (and why), and how many
-- pool messages it could start at once. Pool work goes only to SIMs that are ready here and
-- whose device was seen lately.
CREATE TABLE sim_ready (
    device_id INTEGER NOT NULL REFERENCES devices(id),
    slot      INTEGER NOT NULL,
    ready     INTEGER NOT NULL,
    reason    TEXT NOT NULL DEFAULT '',
    pool_room INTEGER NOT NULL DEFAULT 0,
    offered   INTEGER NOT NULL,
    PRIMARY KEY (device_id, slot)
);
ALTER TABLE messages ADD COLUMN pool_id INTEGER REFERENCES pools(id);
-- Pull leases per SIM now, so the SIM sits in the pinned-work index.
DROP INDEX messages_pull;
CREATE INDEX messages_pull ON messages(device_id, sim, status, urgent DESC, due, id);
-- Pool messages waiting for a SIM: small, as a row leaves it when it is bound.
CREATE INDEX messages_pool_queue ON messages(pool_id, urgent DESC, due, id)
    WHERE status = 1 AND device_id IS NULL;
"""

MIGRATIONS: list[tuple[int, str, Migration]] = [
    (
        1,
        "accounts, tokens, devices, sims, messages, parts, tags, contacts, pakets, idempotency",
        """
        CREATE TABLE accounts (
            id            INTEGER PRIMARY KEY,
            email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            timezone      TEXT NOT NULL DEFAULT 'UTC',
            created       INTEGER NOT NULL
        );

        -- Account tokens (the compat `token`), stored as SHA-256 digests. gettoken issues a new
        -- one per call, so an account holds several; the oldest beyond a cap are revoked.
        CREATE TABLE account_tokens (
            id         INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            token_hash TEXT NOT NULL UNIQUE,
            created    INTEGER NOT NULL
        );
        CREATE INDEX account_tokens_account ON account_tokens(account_id, id);

        CREATE TABLE devices (
            id                  INTEGER PRIMARY KEY,
            account_id          INTEGER NOT NULL REFERENCES accounts(id),
            title               TEXT NOT NULL,
            token_hash          TEXT NOT NULL UNIQUE,
            created             INTEGER NOT NULL,
            lastseen            INTEGER,
            imei                TEXT,
            serialnumber        TEXT,
            appversion          TEXT,
            manufacturer        TEXT,
            model               TEXT,
            firmware            TEXT,
            number              TEXT,
            delaybetweenrequest INTEGER NOT NULL DEFAULT 10,
            delaybetweeneachsms INTEGER,
            subscription        INTEGER NOT NULL DEFAULT 1,
            enabled             INTEGER NOT NULL DEFAULT 1,
            prefix_rules        TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX devices_account ON devices(account_id);

        -- SIM info per slot as the agent reports it (hello / status).
        CREATE TABLE sims (
            device_id     INTEGER NOT NULL REFERENCES devices(id),
            slot          INTEGER NOT NULL,
            present       INTEGER NOT NULL DEFAULT 1,
            active        INTEGER NOT NULL DEFAULT 1,
            iccid         TEXT NOT NULL DEFAULT '',
            imsi          TEXT NOT NULL DEFAULT '',
            number        TEXT NOT NULL DEFAULT '',
            operator      TEXT NOT NULL DEFAULT '',
            operator_code TEXT NOT NULL DEFAULT '',
            carrier       TEXT NOT NULL DEFAULT '',
            country_iso   TEXT NOT NULL DEFAULT '',
            registered    INTEGER NOT NULL DEFAULT 0,
            roaming       INTEGER NOT NULL DEFAULT 0,
            signal_dbm    INTEGER,
            updated       INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (device_id, slot)
        );

        CREATE TABLE tags (
            id         INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            title      TEXT NOT NULL,
            created    INTEGER NOT NULL
        );
        CREATE INDEX tags_account ON tags(account_id);

        CREATE TABLE contacts (
            id         INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            tag_id     INTEGER NOT NULL REFERENCES tags(id),
            phone      TEXT NOT NULL,
            fullname   TEXT,
            created    INTEGER NOT NULL
        );
        CREATE INDEX contacts_tag ON contacts(tag_id);

        CREATE TABLE pakets (
            id         INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            device_id  INTEGER NOT NULL REFERENCES devices(id),
            title      TEXT NOT NULL,
            body       TEXT NOT NULL,
            sim        INTEGER NOT NULL DEFAULT 0,
            tags       TEXT NOT NULL,
            timetosend INTEGER,
            created    INTEGER NOT NULL
        );

        -- AUTOINCREMENT: an id is never reused, even after deletes, because clients keep sms_ids.
        CREATE TABLE messages (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            account_id     INTEGER NOT NULL REFERENCES accounts(id),
            device_id      INTEGER NOT NULL REFERENCES devices(id),
            direction      TEXT NOT NULL DEFAULT 'out',     -- 'out' or 'in' (status 5)
            sendto         TEXT NOT NULL,                   -- recipient, or sender when 'in'
            body           TEXT NOT NULL,
            sim            INTEGER NOT NULL DEFAULT 0,
            status         INTEGER NOT NULL DEFAULT 1,
            urgent         INTEGER NOT NULL DEFAULT 0,
            customerid     INTEGER,
            created        INTEGER NOT NULL,
            timetosend     INTEGER,                         -- NULL: due at once
            due            INTEGER NOT NULL,                -- COALESCE(timetosend, created)
            status_changed INTEGER NOT NULL,
            -- agent protocol: leases (pull -> commit) and outcomes (report)
            lease_id       TEXT,
            lease_expires  INTEGER,
            attempt        INTEGER NOT NULL DEFAULT 0,
            senttime       INTEGER,
            delivered_time INTEGER,
            failure_code   TEXT,
            failure_reason TEXT,
            paket_id       INTEGER REFERENCES pakets(id),
            -- incoming messages: when the sender's SMSC stamped it, and part count
            sent_at        INTEGER,
            parts_count    INTEGER
        );
        CREATE INDEX messages_account_id ON messages(account_id, id);
        CREATE INDEX messages_account_created ON messages(account_id, created);
        -- pull: due work per device, urgent first, then due time, then id
        CREATE INDEX messages_pull ON messages(device_id, status, urgent DESC, due, id);
        CREATE INDEX messages_lease ON messages(lease_id) WHERE lease_id IS NOT NULL;

        -- One row per part of a sent message: the TP-MR the modem returned, and its report.
        CREATE TABLE message_parts (
            sms_id        INTEGER NOT NULL REFERENCES messages(id),
            part_index    INTEGER NOT NULL,
            reference     INTEGER,
            report_status INTEGER,       -- TP-ST of the status report, NULL until one arrives
            reported_at   INTEGER,
            PRIMARY KEY (sms_id, part_index)
        );

        -- Report events already applied (agent protocol: each event id at most once per device).
        CREATE TABLE applied_events (
            device_id  INTEGER NOT NULL REFERENCES devices(id),
            event_id   TEXT NOT NULL,
            sms_id     INTEGER,
            applied_at INTEGER NOT NULL,
            PRIMARY KEY (device_id, event_id)
        );

        -- Incoming SMS idempotency keys: a repeated key answers the same sms_id.
        CREATE TABLE incoming_keys (
            device_id INTEGER NOT NULL REFERENCES devices(id),
            key       TEXT NOT NULL,
            sms_id    INTEGER NOT NULL REFERENCES messages(id),
            created   INTEGER NOT NULL,
            PRIMARY KEY (device_id, key)
        );
        """,
    ),
    (
        2,
        "agent protocol: leases, per-SIM pacing, device events, webhook settings and outbox",
        """
        -- Per-SIM pacing the server hands to the agent in hello (the defaults, docs/agent.md:
        -- 10 s between submits, 100 per hour, 500 per day). NULL caps mean no cap.
        ALTER TABLE devices ADD COLUMN sim_min_interval INTEGER NOT NULL DEFAULT 10;
        ALTER TABLE devices ADD COLUMN sim_per_minute INTEGER DEFAULT 6;
        ALTER TABLE devices ADD COLUMN sim_per_hour INTEGER DEFAULT 100;
        ALTER TABLE devices ADD COLUMN sim_per_day INTEGER DEFAULT 500;
        -- Webhooks (docs/webhooks.md): one URL for incoming SMS, one for sent-SMS status,
        -- and the device's HMAC secret (kept in clear: the server must sign with it).
        ALTER TABLE devices ADD COLUMN webhook_incoming TEXT;
        ALTER TABLE devices ADD COLUMN webhook_status TEXT;
        ALTER TABLE devices ADD COLUMN webhook_secret TEXT;

        -- A pull hands out one lease; its commit answer is kept so a repeated commit (after a lost
        -- answer) gets the same lists.
        CREATE TABLE leases (
            lease_id   TEXT PRIMARY KEY,
            device_id  INTEGER NOT NULL REFERENCES devices(id),
            created    INTEGER NOT NULL,
            expires    INTEGER NOT NULL,
            answer     TEXT
        );
        CREATE INDEX leases_created ON leases(created);
        -- The sweeper looks for expired leases across devices.
        CREATE INDEX messages_lease_expiry ON messages(status, lease_expires)
            WHERE status = 2;

        -- Device status events from the agent (modem unplugged, SIM quarantined, ...).
        CREATE TABLE device_events (
            id        INTEGER PRIMARY KEY,
            device_id INTEGER NOT NULL REFERENCES devices(id),
            at        INTEGER NOT NULL,
            kind      TEXT NOT NULL,
            state     TEXT NOT NULL,
            reason    TEXT NOT NULL DEFAULT '',
            slot      INTEGER,
            received  INTEGER NOT NULL
        );
        CREATE INDEX device_events_device ON device_events(device_id, id);

        -- Durable webhook outbox: written in the same transaction as the status change or the
        -- incoming SMS it announces, so a webhook survives a restart. event_key is the receiver's
        -- idempotency key and is unique: one webhook per status change or incoming message.
        CREATE TABLE webhook_outbox (
            id           INTEGER PRIMARY KEY,
            device_id    INTEGER NOT NULL REFERENCES devices(id),
            kind         TEXT NOT NULL,              -- 'status' or 'incoming'
            event_key    TEXT NOT NULL UNIQUE,
            url          TEXT NOT NULL,
            payload      TEXT NOT NULL,
            state        TEXT NOT NULL DEFAULT 'pending', -- pending, delivered, dead
            attempts     INTEGER NOT NULL DEFAULT 0,
            next_attempt INTEGER NOT NULL,
            created      INTEGER NOT NULL,
            delivered_at INTEGER,
            last_error   TEXT
        );
        CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt) WHERE state = 'pending';
        """,
    ),
    (
        3,
        "webhook outbox rows written by triggers in the transaction of the change they announce",
        """
        -- Bodies are rendered at delivery from the message; the row keeps what it announces.
        ALTER TABLE webhook_outbox ADD COLUMN sms_id INTEGER;
        ALTER TABLE webhook_outbox ADD COLUMN status INTEGER;
        CREATE INDEX webhook_outbox_sms ON webhook_outbox(sms_id, id) WHERE state = 'pending';

        -- One status webhook per status change of an outgoing message to sent or an outcome
        -- (6, 7, 8, 9-12, 100, 101), whoever makes the change. event_key is UNIQUE, so a
        -- status reached twice is announced once.
        CREATE TRIGGER webhook_on_status AFTER UPDATE OF status ON messages
        WHEN NEW.status <> OLD.status AND NEW.direction = 'out'
             AND NEW.status IN (6, 7, 8, 9, 10, 11, 12, 100, 101)
        BEGIN
            INSERT OR IGNORE INTO webhook_outbox(device_id, kind, event_key, url, payload,
                next_attempt, created, sms_id, status)
            SELECT NEW.device_id, 'status', 'status:' || NEW.id || ':' || NEW.status,
                d.webhook_status, '', NEW.status_changed, NEW.status_changed, NEW.id, NEW.status
            FROM devices d WHERE d.id = NEW.device_id AND COALESCE(d.webhook_status, '') <> '';
        END;

        -- One incoming webhook per stored incoming SMS (the agent's key makes it stored once).
        CREATE TRIGGER webhook_on_incoming AFTER INSERT ON messages
        WHEN NEW.direction = 'in' AND NEW.status = 5
        BEGIN
            INSERT OR IGNORE INTO webhook_outbox(device_id, kind, event_key, url, payload,
                next_attempt, created, sms_id, status)
            SELECT NEW.device_id, 'incoming', 'incoming:' || NEW.id, d.webhook_incoming, '',
                NEW.status_changed, NEW.status_changed, NEW.id, 5
            FROM devices d WHERE d.id = NEW.device_id AND COALESCE(d.webhook_incoming, '') <> '';
        END;
        """,
    ),
    (
        4,
        "getallsms filter indexes (device+status, status, customerid, sendto)",
        """
        -- Without these a filtered getallsms walks the account's whole id index: at 1 M
        -- messages 100-300 ms instead of under 1 ms (bench/server_scale.py).
        CREATE INDEX messages_account_device_status ON messages(account_id, device_id, status, id);
        CREATE INDEX messages_account_status ON messages(account_id, status, id);
        CREATE INDEX messages_account_customer ON messages(account_id, customerid, id);
        CREATE INDEX messages_account_sendto ON messages(account_id, sendto, id);
        """,
    ),
    (
        5,
        "drop the device+status index of migration 4: it costs ingest more than it saves",
        """
        -- With all four indexes of migration 4 raw batch inserts ran at a third of their rate;
        -- device+status filters are served by messages_account_status just as well.
        DROP INDEX IF EXISTS messages_account_device_status;
        """,
    ),
    (
        6,
        "per-account message counter for unfiltered getallsms counts",
        """
        -- getallsms answers the number of matching rows on every call; without filters that
        -- was a scan of the account's index (60-100 ms at 1 M messages). Kept by triggers in
        -- the same transaction as the insert or delete.
        CREATE TABLE account_message_counts (
            account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
            messages   INTEGER NOT NULL
        );
        INSERT INTO account_message_counts(account_id, messages)
            SELECT account_id, COUNT(*) FROM messages GROUP BY account_id;
        CREATE TRIGGER account_count_insert AFTER INSERT ON messages
        BEGIN
            INSERT INTO account_message_counts(account_id, messages) VALUES (NEW.account_id, 1)
            ON CONFLICT(account_id) DO UPDATE SET messages = messages + 1;
        END;
        CREATE TRIGGER account_count_delete AFTER DELETE ON messages
        BEGIN
            UPDATE account_message_counts SET messages = messages - 1
            WHERE account_id = OLD.account_id;
        END;
        """,
    ),
    (
        7,
        "drop what nothing uses: the leases table of migration 2 and the outbox payload column",
        """
        -- Leases live on the message rows (lease_id, lease_expires); a repeated commit is answered
        -- from those rows, so this table was never written.
        DROP INDEX IF EXISTS leases_created;
        DROP TABLE IF EXISTS leases;
        -- Webhook bodies are rendered at delivery (migration 3), so `payload` only ever held ''.
        -- SQLite refuses to drop a column a trigger names: the triggers are recreated without it.
        DROP TRIGGER webhook_on_status;
        DROP TRIGGER webhook_on_incoming;
        ALTER TABLE webhook_outbox DROP COLUMN payload;
        CREATE TRIGGER webhook_on_status AFTER UPDATE OF status ON messages
        WHEN NEW.status <> OLD.status AND NEW.direction = 'out'
             AND NEW.status IN (6, 7, 8, 9, 10, 11, 12, 100, 101)
        BEGIN
            INSERT OR IGNORE INTO webhook_outbox(device_id, kind, event_key, url,
                next_attempt, created, sms_id, status)
            SELECT NEW.device_id, 'status', 'status:' || NEW.id || ':' || NEW.status,
                d.webhook_status, NEW.status_changed, NEW.status_changed, NEW.id, NEW.status
            FROM devices d WHERE d.id = NEW.device_id AND COALESCE(d.webhook_status, '') <> '';
        END;
        CREATE TRIGGER webhook_on_incoming AFTER INSERT ON messages
        WHEN NEW.direction = 'in' AND NEW.status = 5
        BEGIN
            INSERT OR IGNORE INTO webhook_outbox(device_id, kind, event_key, url,
                next_attempt, created, sms_id, status)
            SELECT NEW.device_id, 'incoming', 'incoming:' || NEW.id, d.webhook_incoming,
                NEW.status_changed, NEW.status_changed, NEW.id, 5
            FROM devices d WHERE d.id = NEW.device_id AND COALESCE(d.webhook_incoming, '') <> '';
        END;
        """,
    ),
    (8, "pools, per-SIM readiness, and pool messages not yet bound to a device", _pools),
    (
        9,
        "compat Idempotency-Key: one answer per (account, key), kept 24 hours",
        """
        -- A compat request sent with an Idempotency-Key claims the key (answer NULL) before it
        -- stores anything and records its answer after; a retry with the key gets that answer.
        -- A row without an answer that no running request owns means the outcome is unknown
        -- (the server stopped in between): the retry is refused rather than stored twice.
        CREATE TABLE idempotency_keys (
            account_id  INTEGER NOT NULL REFERENCES accounts(id),
            key         TEXT NOT NULL,
            fingerprint TEXT NOT NULL,   -- SHA-256 of the route and its parameters
            answer      TEXT,            -- the JSON answer, NULL while the request runs
            created     INTEGER NOT NULL,
            PRIMARY KEY (account_id, key)
        );
        CREATE INDEX idempotency_keys_created ON idempotency_keys(created);
        """,
    ),
    (
        10,
        "SMPP: submitted ids wanting receipts, parts of concatenated messages, receipt/MO outbox",
        """
        -- What an ESME submitted over SMPP (server/smpp): the message_id it got, whether it asked
        -- for a receipt, and, for a part of a concatenated message, the part's text until every
        -- part is in (sms_id NULL until then). No foreign key on sms_id: cancel_sm deletes the
        -- message, and the row still answers query_sm.
        CREATE TABLE smpp_submits (
            id                  INTEGER PRIMARY KEY AUTOINCREMENT,
            account_id          INTEGER NOT NULL REFERENCES accounts(id),
            sms_id              INTEGER,
            smpp_id             TEXT NOT NULL UNIQUE,
            registered_delivery INTEGER NOT NULL,
            source_addr         TEXT NOT NULL,
            dest_addr           TEXT NOT NULL,
            concat_key          TEXT,
            part_seq            INTEGER,
            part_text           TEXT,
            created             INTEGER NOT NULL,
            expires             INTEGER,            -- validity_period: gone unless taken by then
            expired             INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX smpp_submits_sms ON smpp_submits(sms_id) WHERE sms_id IS NOT NULL;
        CREATE INDEX smpp_submits_expires ON smpp_submits(expires) WHERE expires IS NOT NULL;
        CREATE INDEX smpp_submits_parts ON smpp_submits(account_id, concat_key)
            WHERE sms_id IS NULL;

        -- SMPP credentials: system_id names one (at most 15 characters, what SMPP clients send),
        -- the password (8 characters, the SMPP maximum) is kept as a scrypt hash, and `pool` is
        -- where its messages go unless a submit's service_type names another.
        CREATE TABLE smpp_credentials (
            system_id     TEXT PRIMARY KEY COLLATE NOCASE,
            account_id    INTEGER NOT NULL REFERENCES accounts(id),
            password_hash TEXT NOT NULL,
            pool          TEXT,
            created       INTEGER NOT NULL
        );

        -- Accounts that have bound a receiver: their incoming SMS are queued for SMPP from then on.
        CREATE TABLE smpp_accounts (
            account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
            created    INTEGER NOT NULL
        );

        -- Durable deliver_sm outbox, written by triggers in the transaction of the change it
        -- announces; a row stays pending until an ESME answers its deliver_sm with ESME_ROK.
        CREATE TABLE smpp_outbox (
            id           INTEGER PRIMARY KEY,
            account_id   INTEGER NOT NULL REFERENCES accounts(id),
            kind         TEXT NOT NULL,                 -- 'receipt' or 'mo'
            sms_id       INTEGER NOT NULL,
            smpp_id      TEXT,                          -- receipts: the id the ESME was given
            status       INTEGER NOT NULL,                -- 0: its validity_period ran out
            event_key    TEXT NOT NULL UNIQUE,
            state        TEXT NOT NULL DEFAULT 'pending',  -- pending, delivered
            attempts     INTEGER NOT NULL DEFAULT 0,
            created      INTEGER NOT NULL,
            delivered_at INTEGER
        );
        CREATE INDEX smpp_outbox_pending ON smpp_outbox(account_id, id) WHERE state = 'pending';

        -- One receipt per submitted id that asked for one (registered_delivery 1: any final
        -- outcome; 2: failures only) when its message reaches a final status.
        CREATE TRIGGER smpp_receipt_on_status AFTER UPDATE OF status ON messages
        WHEN NEW.status <> OLD.status AND NEW.direction = 'out'
             AND NEW.status IN (7, 8, 9, 10, 11, 12, 100, 101)
        BEGIN
            INSERT OR IGNORE INTO smpp_outbox(account_id, kind, sms_id, smpp_id, status,
                event_key, created)
            SELECT s.account_id, 'receipt', NEW.id, s.smpp_id, NEW.status,
                'receipt:' || s.smpp_id, NEW.status_changed
            FROM smpp_submits s WHERE s.sms_id = NEW.id
                AND ((s.registered_delivery & 3) = 1
                     OR ((s.registered_delivery & 3) = 2 AND NEW.status <> 7));
        END;

        CREATE TRIGGER smpp_mo_on_incoming AFTER INSERT ON messages
        WHEN NEW.direction = 'in' AND NEW.status = 5
        BEGIN
            INSERT OR IGNORE INTO smpp_outbox(account_id, kind, sms_id, status, event_key,
                created)
            SELECT NEW.account_id, 'mo', NEW.id, 5, 'mo:' || NEW.id, NEW.status_changed
            FROM smpp_accounts a WHERE a.account_id = NEW.account_id;
        END;
        """,
    ),
    (
        11,
        "SIM prepaid balance as the agent reports it",
        """
        -- The SIM's last balance check by USSD (agent balance_ussd) as JSON: {text, amount,
        -- currency, low, checked_at (microseconds)}; NULL until the agent reports one.
        ALTER TABLE sims ADD COLUMN balance TEXT;
        """,
    ),
    (
        12,
        "login attempts shared by the servers of one database",
        """
        -- Several servers on one PostgreSQL database count failed logins together here
        -- (server/core/ratelimit.py's hard locks, docs/scaling.md). The SQLite store serves one
        -- server, which counts them in memory: the table stays empty, and exists so that both
        -- engines have the same tables (`db copy`). `key` is a SHA-256 of what is limited (an
        -- email and client address pair, or an address): no address or email is stored.
        CREATE TABLE login_attempts (
            id     INTEGER PRIMARY KEY,
            key    TEXT NOT NULL,
            at     INTEGER NOT NULL,
            judged INTEGER NOT NULL DEFAULT 0   -- 0 while its password is checked
        );
        CREATE INDEX login_attempts_key ON login_attempts(key, at);
        """,
    ),
    (
        13,
        "native API: API keys, quotas and their usage, message status history, validity",
        """
        -- API keys of the native API (/api/v1): named, scoped, stored as SHA-256 digests. A
        -- revoked key keeps its row (revoked time) so lists and audits still name it; its name
        -- is free again for a new key.
        CREATE TABLE api_keys (
            id              INTEGER PRIMARY KEY,
            account_id      INTEGER NOT NULL REFERENCES accounts(id),
            name            TEXT NOT NULL,
            key_hash        TEXT NOT NULL UNIQUE,
            prefix          TEXT NOT NULL,              -- the first characters, to recognise it
            scopes          TEXT NOT NULL,              -- comma list: send,read,devices,admin
            allow_get_send  INTEGER NOT NULL DEFAULT 0, -- may send with GET /api/v1/send
            rate_per_minute INTEGER NOT NULL,
            daily_quota     INTEGER,                    -- messages per UTC day, NULL: none
            monthly_quota   INTEGER,                    -- messages per UTC month, NULL: none
            created         INTEGER NOT NULL,
            last_used       INTEGER,
            revoked         INTEGER
        );
        CREATE UNIQUE INDEX api_keys_name ON api_keys(account_id, name) WHERE revoked IS NULL;
        CREATE INDEX api_keys_account ON api_keys(account_id, id);

        CREATE TABLE account_quotas (
            account_id    INTEGER PRIMARY KEY REFERENCES accounts(id),
            daily_quota   INTEGER,
            monthly_quota INTEGER
        );
        -- Messages counted against quotas, per account (key_id 0) and per key, per period
        -- ('d:2026-12-06', 'm:2026-12'); written in the transaction that stores the messages.
        CREATE TABLE quota_usage (
            account_id INTEGER NOT NULL,
            key_id     INTEGER NOT NULL,
            period     TEXT NOT NULL,
            used       INTEGER NOT NULL,
            PRIMARY KEY (account_id, key_id, period)
        );

        -- One row per status change of a message, whoever made it (triggers see every door and
        -- the agent protocol alike); the creation (status 1 or 5) is the message's `created`.
        CREATE TABLE message_history (
            sms_id    INTEGER NOT NULL,
            status    INTEGER NOT NULL,
            at        INTEGER NOT NULL,
            device_id INTEGER,
            sim       INTEGER,
            code      TEXT
        );
        CREATE INDEX message_history_sms ON message_history(sms_id, at);
        CREATE TRIGGER message_history_on_status AFTER UPDATE OF status ON messages
        WHEN NEW.status <> OLD.status
        BEGIN
            INSERT INTO message_history(sms_id, status, at, device_id, sim, code)
            VALUES (NEW.id, NEW.status, NEW.status_changed, NEW.device_id, NEW.sim,
                    NEW.failure_code);
        END;

        -- A message not taken by a SIM by this time expires (status 21) instead of going out.
        ALTER TABLE messages ADD COLUMN valid_until INTEGER;
        CREATE INDEX messages_valid_until ON messages(valid_until)
            WHERE valid_until IS NOT NULL AND status = 1;
        """,
    ),
    (
        14,
        "native API: message templates",
        """
        -- Texts with {variable} placeholders, filled per recipient when a send names one.
        CREATE TABLE templates (
            id         INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            name       TEXT NOT NULL,
            body       TEXT NOT NULL,
            created    INTEGER NOT NULL,
            updated    INTEGER NOT NULL,
            UNIQUE (account_id, name)
        );
        """,
    ),
    (
        15,
        "web console login sessions shared by the servers of one database",
        """
        -- One row per console login (server/core/sessions.py), so that any server of a database
        -- knows a session another made. `token_hash` is the SHA-256 of the cookie value, which
        -- is never stored; `csrf` is the session's form token (worth nothing without the
        -- cookie); `flash` the JSON list of notes for the next page. Times in microseconds.
        CREATE TABLE console_sessions (
            token_hash TEXT PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            csrf       TEXT NOT NULL,
            started    INTEGER NOT NULL,
            used       INTEGER NOT NULL,
            flash      TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX console_sessions_account ON console_sessions(account_id);
        CREATE INDEX console_sessions_used ON console_sessions(used);
        """,
    ),
    (
        16,
        "native API: campaigns and their recipients",
        """
        -- A named send to groups or a list, handed to the queue a window at a time by the
        -- campaign runner (server/core/campaign_runner.py) so that pausing it holds the rest.
        CREATE TABLE campaigns (
            id               INTEGER PRIMARY KEY,
            account_id       INTEGER NOT NULL REFERENCES accounts(id),
            key_id           INTEGER NOT NULL,       -- 0: made without an API key
            name             TEXT NOT NULL,
            state            TEXT NOT NULL,          -- scheduled running paused finished cancelled
            text             TEXT,
            template_id      INTEGER,
            variables        TEXT NOT NULL DEFAULT '{}',
            pool             TEXT,
            device_id        INTEGER,
            sim              INTEGER,
            priority         TEXT NOT NULL DEFAULT 'normal',
            validity_minutes INTEGER,
            send_at          INTEGER,                -- NULL: at once
            created          INTEGER NOT NULL,
            started          INTEGER,
            finished         INTEGER,
            recipients       INTEGER NOT NULL,
            group_ids        TEXT NOT NULL DEFAULT '[]',
            reason           TEXT,                   -- why it paused itself
            UNIQUE (account_id, name)
        );
        CREATE INDEX campaigns_state ON campaigns(state, send_at);
        -- Its recipients in order; sms_id once handed to the queue, or the error that refused it.
        CREATE TABLE campaign_recipients (
            campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
            idx         INTEGER NOT NULL,
            number      TEXT NOT NULL,
            variables   TEXT,                        -- JSON, NULL: none of its own
            sms_id      INTEGER,
            error_code  TEXT,
            PRIMARY KEY (campaign_id, idx)
        );
        CREATE INDEX campaign_recipients_sms ON campaign_recipients(campaign_id, sms_id);
        """,
    ),
    (
        17,
        "native API: device enrollment codes",
        """
        -- A short-lived, single-use code that an agent swaps for its device token
        -- (simhive-agent enroll). Only the code's digest is stored; the token is kept sealed
        -- with a key derived from the code (server/core/enrollment.py) and erased once used.
        CREATE TABLE enrollment_codes (
            code_hash  TEXT PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            device_id  INTEGER NOT NULL REFERENCES devices(id),
            sealed     TEXT,                 -- the device token, sealed; NULL once used
            expires    INTEGER NOT NULL,
            created    INTEGER NOT NULL,
            used       INTEGER
        );
        CREATE INDEX enrollment_codes_expires ON enrollment_codes(expires);
        """,
    ),
    (
        18,
        "native API: the account's verified phone, one-time codes",
        """
        -- The number one-time codes go to (server/core/otp.py); verified once a code sent to it
        -- came back.
        CREATE TABLE account_phones (
            account_id INTEGER PRIMARY KEY REFERENCES accounts(id),
            number     TEXT NOT NULL,
            verified   INTEGER,                -- when; NULL until confirmed
            updated    INTEGER NOT NULL
        );
        -- One live code per account, action and target (a device, or the number to verify): its
        -- salted digest, when it was sent and expires, wrong tries and the lock they caused.
        CREATE TABLE otp_codes (
            account_id   INTEGER NOT NULL REFERENCES accounts(id),
            action       TEXT NOT NULL,        -- verify_phone, delete_device, reset_token
            target       INTEGER NOT NULL,     -- device id, or the number (its digits)
            code_hash    TEXT,                 -- NULL once used or locked
            sent         INTEGER NOT NULL,
            expires      INTEGER NOT NULL,
            attempts     INTEGER NOT NULL DEFAULT 0,
            locked_until INTEGER,
            PRIMARY KEY (account_id, action, target)
        );
        """,
    ),
    (
        19,
        "native API: account webhooks (message status, incoming SMS, device status)",
        """
        -- An account's webhook URLs, one per kind ('' or NULL: none), and its signing secret.
        CREATE TABLE account_webhooks (
            account_id   INTEGER PRIMARY KEY REFERENCES accounts(id),
            url_status   TEXT,
            url_incoming TEXT,
            url_device   TEXT,
            secret       TEXT,
            updated      INTEGER NOT NULL
        );
        -- Durable outbox of account webhooks: rows are written in the transaction of the change
        -- they announce (triggers below; device status by server/core/device_watch.py), bodies
        -- of message rows rendered at delivery, device rows carry theirs (`body`).
        CREATE TABLE account_webhook_outbox (
            id           INTEGER PRIMARY KEY,
            account_id   INTEGER NOT NULL REFERENCES accounts(id),
            kind         TEXT NOT NULL,           -- status, incoming, device
            event_key    TEXT NOT NULL UNIQUE,    -- the receiver's idempotency key
            url          TEXT NOT NULL,
            sms_id       INTEGER,
            status       INTEGER,
            body         TEXT,
            state        TEXT NOT NULL DEFAULT 'pending',  -- pending, delivered, dead
            attempts     INTEGER NOT NULL DEFAULT 0,
            next_attempt INTEGER NOT NULL,
            created      INTEGER NOT NULL,
            delivered_at INTEGER,
            last_error   TEXT
        );
        CREATE INDEX account_webhook_outbox_due ON account_webhook_outbox(next_attempt)
            WHERE state = 'pending';
        CREATE TRIGGER account_webhook_on_status AFTER UPDATE OF status ON messages
        WHEN NEW.status <> OLD.status AND NEW.direction = 'out'
             AND NEW.status IN (6, 7, 8, 9, 10, 11, 12, 100, 101, 20, 21)
        BEGIN
            INSERT OR IGNORE INTO account_webhook_outbox(account_id, kind, event_key, url, sms_id,
                status, next_attempt, created)
            SELECT NEW.account_id, 'status', 'a-status:' || NEW.id || ':' || NEW.status,
                a.url_status, NEW.id, NEW.status, NEW.status_changed, NEW.status_changed
            FROM account_webhooks a
            WHERE a.account_id = NEW.account_id AND COALESCE(a.url_status, '') <> '';
        END;
        CREATE TRIGGER account_webhook_on_incoming AFTER INSERT ON messages
        WHEN NEW.direction = 'in' AND NEW.status = 5
        BEGIN
            INSERT OR IGNORE INTO account_webhook_outbox(account_id, kind, event_key, url, sms_id,
                status, next_attempt, created)
            SELECT NEW.account_id, 'incoming', 'a-incoming:' || NEW.id, a.url_incoming, NEW.id,
                5, NEW.status_changed, NEW.status_changed
            FROM account_webhooks a
            WHERE a.account_id = NEW.account_id AND COALESCE(a.url_incoming, '') <> '';
        END;
        -- The connection state the device watcher last announced.
        CREATE TABLE device_connection (
            device_id INTEGER PRIMARY KEY REFERENCES devices(id),
            connected INTEGER NOT NULL,
            changed   INTEGER NOT NULL
        );
        """,
    ),
    (
        20,
        "SMPP logins belong to API keys; deliver_sm outbox rows are claimed before sending",
        """
        -- An API key may carry an SMPP login (docs/smpp.md, "Credentials"): system_id names the
        -- key (at most 15 characters, what SMPP clients send), its 8-character SMPP password is
        -- a scrypt hash (8 characters are too few for a bare SHA-256), and `smpp_pool` is where
        -- its submits go unless service_type names a pool. A revoked key frees its system_id.
        ALTER TABLE api_keys ADD COLUMN smpp_system_id TEXT COLLATE NOCASE;
        ALTER TABLE api_keys ADD COLUMN smpp_password_hash TEXT;
        ALTER TABLE api_keys ADD COLUMN smpp_pool TEXT;
        CREATE UNIQUE INDEX api_keys_smpp ON api_keys(smpp_system_id)
            WHERE smpp_system_id IS NOT NULL AND revoked IS NULL;
        -- The former SMPP credentials become keys with the scopes they had in effect (send and
        -- read) and the rate they had (the old per-account default, 100 per second). Their
        -- key_hash is no SHA-256 digest, so no bearer secret matches it: they serve SMPP only.
        INSERT INTO api_keys(account_id, name, key_hash, prefix, scopes, allow_get_send,
            rate_per_minute, created, smpp_system_id, smpp_password_hash, smpp_pool)
        SELECT account_id, 'SMPP credential ' || system_id,
            'migrated-smpp:' || lower(hex(randomblob(32))), 'smpp', 'send,read', 0, 6000,
            created, system_id, password_hash, pool
        FROM smpp_credentials;
        DROP TABLE smpp_credentials;
        -- A server claims an outbox row until this time (microseconds) before it sends the
        -- deliver_sm, so that two servers on one database never push the same row at once;
        -- after a refusal it is set to when the row may be offered again.
        ALTER TABLE smpp_outbox ADD COLUMN claimed_until INTEGER;
        """,
    ),
    (
        21,
        "status history: goes with its message, and is pruned after a retention",
        """
        -- A deleted message takes its status history along, whatever deletes it (SMPP expiry
        -- and cancel, device and account deletes), so no history outlives its message.
        CREATE TRIGGER message_history_on_delete AFTER DELETE ON messages
        BEGIN
            DELETE FROM message_history WHERE sms_id = OLD.id;
        END;
        -- The retention prune (server/core/history.py) finds old rows by time.
        CREATE INDEX message_history_at ON message_history(at);
        """,
    ),
    (
        22,
        "rate limits and login slow-downs shared by the servers of one database",
        """
        -- Like login_attempts (migration 12): several servers on one PostgreSQL database keep
        -- these here, one server (SQLite) keeps them in memory, and the tables exist on both so
        -- that the engines have the same tables (`db copy`). An API key's token bucket
        -- (server/core/key_rate.py): `tokens` left at `at` (microseconds).
        CREATE TABLE rate_buckets (
            key_id     INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL,
            tokens     REAL NOT NULL,
            at         INTEGER NOT NULL
        );
        CREATE INDEX rate_buckets_account ON rate_buckets(account_id);
        -- A login slow-down's next free slot (microseconds) per key: a SHA-256 of an email, or
        -- of the whole server (server/core/ratelimit.py).
        CREATE TABLE login_pace (
            key       TEXT PRIMARY KEY,
            next_free INTEGER NOT NULL
        );
        CREATE INDEX login_pace_next_free ON login_pace(next_free);
        """,
    ),
    (
        23,
        "the pull check reads only its own device's leased messages",
        """
        -- A pull check asks when its device's next lease expires (MIN(lease_expires) for one
        -- device) and whether one has expired. messages_lease_expiry (for the sweeper, across
        -- devices) does not start with the device, so those reads walked every leased message
        -- of every device; this one seeks to the device's own.
        CREATE INDEX messages_device_leases ON messages(device_id, lease_expires)
            WHERE status = 2;
        """,
    ),
    (
        24,
        "status triggers test ranges of statuses, not lists",
        """
        -- SQLite compiles `NEW.status IN (6, 7, ..., 101)` (a list of more than two values) into
        -- a temporary b-tree that it builds and fills again every time the trigger runs: three
        -- of them for every status change of every message, about a third of the instructions
        -- the writer spent per SMS (bench/store_agent.py). Ranges test the same integers with
        -- comparisons; each trigger is otherwise as migrations 7, 10 and 19 made it.
        DROP TRIGGER webhook_on_status;
        CREATE TRIGGER webhook_on_status AFTER UPDATE OF status ON messages
        WHEN NEW.status <> OLD.status AND NEW.direction = 'out'
             AND (NEW.status BETWEEN 6 AND 12 OR NEW.status BETWEEN 100 AND 101)
        BEGIN
            INSERT OR IGNORE INTO webhook_outbox(device_id, kind, event_key, url,
                next_attempt, created, sms_id, status)
            SELECT NEW.device_id, 'status', 'status:' || NEW.id || ':' || NEW.status,
                d.webhook_status, NEW.status_changed, NEW.status_changed, NEW.id, NEW.status
            FROM devices d WHERE d.id = NEW.device_id AND COALESCE(d.webhook_status, '') <> '';
        END;
        DROP TRIGGER smpp_receipt_on_status;
        CREATE TRIGGER smpp_receipt_on_status AFTER UPDATE OF status ON messages
        WHEN NEW.status <> OLD.status AND NEW.direction = 'out'
             AND (NEW.status BETWEEN 7 AND 12 OR NEW.status BETWEEN 100 AND 101)
        BEGIN
            INSERT OR IGNORE INTO smpp_outbox(account_id, kind, sms_id, smpp_id, status,
                event_key, created)
            SELECT s.account_id, 'receipt', NEW.id, s.smpp_id, NEW.status,
                'receipt:' || s.smpp_id, NEW.status_changed
            FROM smpp_submits s WHERE s.sms_id = NEW.id
                AND ((s.registered_delivery & 3) = 1
                     OR ((s.registered_delivery & 3) = 2 AND NEW.status <> 7));
        END;
        DROP TRIGGER account_webhook_on_status;
        CREATE TRIGGER account_webhook_on_status AFTER UPDATE OF status ON messages
        WHEN NEW.status <> OLD.status AND NEW.direction = 'out'
             AND (NEW.status BETWEEN 6 AND 12 OR NEW.status BETWEEN 20 AND 21
                  OR NEW.status BETWEEN 100 AND 101)
        BEGIN
            INSERT OR IGNORE INTO account_webhook_outbox(account_id, kind, event_key, url, sms_id,
                status, next_attempt, created)
            SELECT NEW.account_id, 'status', 'a-status:' || NEW.id || ':' || NEW.status,
                a.url_status, NEW.id, NEW.status, NEW.status_changed, NEW.status_changed
            FROM account_webhooks a
            WHERE a.account_id = NEW.account_id AND COALESCE(a.url_status, '') <> '';
        END;
        """,
    ),
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations; returns the schema version. Safe with concurrent processes:
    BEGIN IMMEDIATE takes the write lock before the version is read."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied INTEGER NOT NULL)"
    )
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        current = int(row[0])
        for version, description, sql in MIGRATIONS:
            if version <= current:
                continue
            if callable(sql):
                sql(conn)
            else:
                for statement in _statements(sql):
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations(version, description, applied)"
                " VALUES (?, ?, CAST(strftime('%s','now') AS INTEGER) * 1000000)",
                (version, description),
            )
            current = version
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("--") and not buf.strip():
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


LATEST_VERSION = MIGRATIONS[-1][0]
