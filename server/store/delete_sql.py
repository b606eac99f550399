"""What deleting a device or an account removes, as SQL both engines run (named parameters :d,
:a and :now; server/store/sqlite_delete.py and pg_delete.py execute it).

What goes (docs/configuration.md, "Deleting"): a device takes its SIMs, its pool memberships and
its own pool, its events and webhook deliveries, and its messages, sent, received and unsent.
Unsent messages of a shared pool that the device had taken but not yet committed go back to their
pool instead, to leave on another SIM. An account takes its devices so, then its tokens, pools,
tags, contacts, SMPP credentials and queues, all its messages with their status history, and
the native API's keys (with their rate-limit buckets), quotas, templates, campaigns, enrollment
and one-time codes, phone and account webhooks.

Foreign keys are on in both engines: a table added later that points at a device or an account
and is not cleared here makes the delete fail (and roll back) rather than leave rows pointing
nowhere; tests/server_agent/test_delete.py checks that an account delete leaves every table empty.
"""

from __future__ import annotations

from simhive.server.core.status import Status

_UNSENT_SQL = ",".join(str(int(s)) for s in (Status.NEW, Status.TAKEN, Status.QUEUED))
# The device's messages: its own, and those still waiting in its device pool (no device yet).
_DEVICE_MESSAGES = (
    "(device_id = :d OR pool_id IN (SELECT id FROM pools WHERE kind = 'device' AND device_id = :d))"
)
# Shared-pool messages the device took and has not committed: back to their pool.
# COALESCE: a NULL device_id or pool_id would make the test NULL, and NOT NULL excludes a row too.
_BACK_TO_POOL = (
    f"COALESCE(device_id = :d AND status IN ({int(Status.NEW)}, {int(Status.TAKEN)})"
    " AND pool_id IN (SELECT id FROM pools WHERE kind <> 'device'), FALSE)"
)
# As the stores' REQUEUE_SET: a pinned message keeps its device, a pool message loses it.
_REQUEUE_SET = (
    "status = 1, lease_id = NULL, lease_expires = NULL, status_changed = :now,"
    " device_id = CASE WHEN pool_id IS NULL THEN device_id END"
)
_GONE = f"SELECT COUNT(*) FROM messages WHERE {_DEVICE_MESSAGES} AND NOT ({_BACK_TO_POOL})"

# name -> query of one count, parameter :d
DEVICE_COUNTS = {
    "sims": "SELECT COUNT(*) FROM sims WHERE device_id = :d",
    "messages": _GONE,
    "unsent_messages": f"{_GONE} AND status IN ({_UNSENT_SQL})",
    "incoming_messages": f"{_GONE} AND direction = 'in'",
    "messages_back_to_pool": f"SELECT COUNT(*) FROM messages WHERE {_BACK_TO_POOL}",
}

# name -> query of one count, parameter :a
ACCOUNT_COUNTS = {
    "messages": "SELECT COUNT(*) FROM messages WHERE account_id = :a",
    "unsent_messages": (
        f"SELECT COUNT(*) FROM messages WHERE account_id = :a AND status IN ({_UNSENT_SQL})"
    ),
    "pools": "SELECT COUNT(*) FROM pools WHERE account_id = :a AND kind = 'named'",
    "tags": "SELECT COUNT(*) FROM tags WHERE account_id = :a",
    "contacts": "SELECT COUNT(*) FROM contacts WHERE account_id = :a",
}

_MINE = f"SELECT id FROM messages WHERE {_DEVICE_MESSAGES}"
# In order; parameters :d and :now.
DELETE_DEVICE = [
    f"UPDATE messages SET {_REQUEUE_SET} WHERE {_BACK_TO_POOL}",
    f"DELETE FROM message_parts WHERE sms_id IN ({_MINE})",
    f"DELETE FROM message_history WHERE sms_id IN ({_MINE})",
    f"DELETE FROM account_webhook_outbox WHERE sms_id IN ({_MINE})",
    "DELETE FROM incoming_keys WHERE device_id = :d",
    "DELETE FROM applied_events WHERE device_id = :d",
    "DELETE FROM webhook_outbox WHERE device_id = :d",
    f"DELETE FROM messages WHERE {_DEVICE_MESSAGES}",
    "DELETE FROM pakets WHERE device_id = :d",
    "DELETE FROM device_events WHERE device_id = :d",
    "DELETE FROM sims WHERE device_id = :d",
    "DELETE FROM sim_ready WHERE device_id = :d",
    "DELETE FROM pool_sims WHERE device_id = :d",
    "DELETE FROM pool_sticky WHERE device_id = :d",
    "DELETE FROM pools WHERE kind = 'device' AND device_id = :d",
    "DELETE FROM enrollment_codes WHERE device_id = :d",
    "DELETE FROM device_connection WHERE device_id = :d",
    # The device's one-time codes (their target is the device id for these actions).
    "DELETE FROM otp_codes WHERE action IN ('delete_device', 'reset_token') AND target = :d",
    "DELETE FROM devices WHERE id = :d",
]

# In order, after every device of the account went as above; parameter :a.
DELETE_ACCOUNT = [
    "DELETE FROM message_parts WHERE sms_id IN (SELECT id FROM messages WHERE account_id = :a)",
    "DELETE FROM message_history WHERE sms_id IN (SELECT id FROM messages WHERE account_id = :a)",
    "DELETE FROM account_webhook_outbox WHERE account_id = :a",
    "DELETE FROM messages WHERE account_id = :a",
    "DELETE FROM campaign_recipients"
    " WHERE campaign_id IN (SELECT id FROM campaigns WHERE account_id = :a)",
    "DELETE FROM campaigns WHERE account_id = :a",
    "DELETE FROM pakets WHERE account_id = :a",
    "DELETE FROM contacts WHERE account_id = :a",
    "DELETE FROM tags WHERE account_id = :a",
    "DELETE FROM pools WHERE account_id = :a",
    "DELETE FROM idempotency_keys WHERE account_id = :a",
    "DELETE FROM rate_buckets WHERE account_id = :a",
    "DELETE FROM api_keys WHERE account_id = :a",
    "DELETE FROM account_quotas WHERE account_id = :a",
    "DELETE FROM quota_usage WHERE account_id = :a",
    "DELETE FROM templates WHERE account_id = :a",
    "DELETE FROM enrollment_codes WHERE account_id = :a",
    "DELETE FROM otp_codes WHERE account_id = :a",
    "DELETE FROM account_phones WHERE account_id = :a",
    "DELETE FROM account_webhooks WHERE account_id = :a",
    "DELETE FROM console_sessions WHERE account_id = :a",
    "DELETE FROM smpp_outbox WHERE account_id = :a",
    "DELETE FROM smpp_submits WHERE account_id = :a",
    "DELETE FROM smpp_accounts WHERE account_id = :a",
    "DELETE FROM account_message_counts WHERE account_id = :a",
    "DELETE FROM account_tokens WHERE account_id = :a",
    "DELETE FROM accounts WHERE id = :a",
]
