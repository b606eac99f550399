"""Migration 7 drops what nothing used (the `leases` table of migration 2, the outbox `payload`
column) from a version-6 database that has data in it, and everything still works after it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from simhive.server.core.models import IncomingMessage, ReportEvent
from simhive.server.store.sqlite import SqliteStore
from simhive.server.store.sqlite_schema import LATEST_VERSION, MIGRATIONS

T0 = 1_700_000_000_000_000  # microseconds
HOOK = "http://127.0.0.1:9/status"


def _version_6_database(path: Path) -> None:
    """The schema as session 1 left it, filled the way a running server filled it."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE schema_migrations ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied INTEGER NOT NULL)"
    )
    for version, description, sql in MIGRATIONS:
        if version > 6:
            break
        assert isinstance(sql, str)
        conn.executescript(sql)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, description, T0))
    conn.executescript(
        f"""
        INSERT INTO accounts(id, email, password_hash, created) VALUES (1, 'a@x.org', 'h', {T0});
        INSERT INTO devices(id, account_id, title, token_hash, created, webhook_status,
                            webhook_incoming)
            VALUES (1, 1, 'box', 'th', {T0}, '{HOOK}', '{HOOK}');
        INSERT INTO messages(id, account_id, device_id, sendto, body, status, created, due,
                             status_changed)
            VALUES (10, 1, 1, '+4915752982212', 'queued', 1, {T0}, {T0}, {T0}),
                   (11, 1, 1, '+4915752982212', 'sending', 3, {T0}, {T0}, {T0});
        UPDATE messages SET status = 6, status_changed = {T0 + 1} WHERE id = 11;
        INSERT INTO messages(id, account_id, device_id, direction, sendto, body, status,
                             created, due, status_changed)
            VALUES (12, 1, 1, 'in', '+4917012345', 'hello', 5, {T0}, {T0}, {T0});
        UPDATE webhook_outbox SET state = 'delivered', delivered_at = {T0 + 2}
            WHERE kind = 'incoming';
        INSERT INTO leases(lease_id, device_id, created, expires) VALUES ('l1', 1, {T0}, {T0});
        """
    )
    conn.commit()
    conn.close()


async def test_migration_7_drops_the_unused_table_and_column_and_keeps_the_data(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v6.sqlite3"
    _version_6_database(path)
    before = sqlite3.connect(path)
    outbox_before = before.execute(
        "SELECT id, kind, event_key, url, state, sms_id, status FROM webhook_outbox ORDER BY id"
    ).fetchall()
    before.close()
    kinds = [(r[1], r[4]) for r in outbox_before]
    assert kinds == [("status", "pending"), ("incoming", "delivered")]

    store = SqliteStore(path)
    await store.open()
    try:
        # Both triggers were recreated without the column: they still write the outbox.
        sent = ReportEvent(event_id="10:sent", sms_id=10, type="sent", at=T0 + 5, parts=((0, 7),))
        assert await store.apply_events(1, [sent], T0 + 5) == ["10:sent"]
        incoming = IncomingMessage(key="k1", sim=0, sender="+4917012345", body="again")
        [(_, in_id)] = await store.store_incoming(1, 1, [incoming], T0 + 6)
        jobs = await store.due_webhooks(T0 + 10, 10)
        assert {(j.kind, j.message.id, j.status) for j in jobs} == {
            ("status", 11, 6), ("status", 10, 6), ("incoming", in_id, 5),
        }  # fmt: skip
    finally:
        await store.close()

    conn = sqlite3.connect(path)
    (applied,) = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    assert applied == LATEST_VERSION  # every migration ran, the later ones too
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "leases" not in names and "leases_created" not in names
    assert {"webhook_on_status", "webhook_on_incoming", "webhook_outbox_due"} <= names
    columns = {r[1] for r in conn.execute("PRAGMA table_info(webhook_outbox)")}
    assert "payload" not in columns
    assert {"sms_id", "status", "state", "next_attempt", "event_key"} <= columns
    after = conn.execute(
        "SELECT id, kind, event_key, url, state, sms_id, status FROM webhook_outbox ORDER BY id"
    ).fetchall()
    assert after[: len(outbox_before)] == outbox_before
    messages = conn.execute("SELECT id, status FROM messages ORDER BY id").fetchall()
    assert messages[:3] == [(10, 6), (11, 6), (12, 5)]
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
