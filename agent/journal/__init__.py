"""The agent's durable journal: SQLite in WAL mode, synchronous=FULL, group-committed writes.

It is the agent's memory across crashes (docs/reliability.md), one module per area:

- `outbox`: messages leased from the server. ``leased`` (written before `commit`, so a crash
  between commit and its answer can be resolved by committing the same lease again) ->
  ``committed`` (ours to send) -> ``dispatching`` (on disk *before* AT+CMGS) ->
  ``sent`` | ``failed`` | ``unknown``; ``sent`` later becomes ``delivered``, ``not_delivered``,
  or ``unknown`` when no final report came in time. A row still ``dispatching`` at start-up may
  have reached the network, so it is never resent: it becomes ``unknown`` with an event. A
  pool message (``pool`` set; NULL = pinned) stays ``leased`` until its send: the claim's
  answer takes it straight to ``dispatching`` (agent/claim.py). Before that it may leave
  ``leased`` (or ``committed``) for ``releasing``.
- `delivery`: each sent part's TP-MR and send time for report matching, and status reports
  that matched nothing yet (held on disk, matched when their send is journaled).
- `events`: what the server must hear (``report`` and ``status`` channels), in order, each
  with a stable event id so a resend after a lost answer changes nothing on the server.
- `inbox`: received SMS keyed by the modem layer's idempotency key, with a forwarded flag.
- `release`: per-SIM load, and pool messages handed back to the server (``leased`` or
  ``committed`` -> ``releasing`` on disk -> deleted once released, or ``committed`` again if
  the server keeps them); a ``releasing`` row is never dispatched.
- `housekeeping`: forgetting finished history.
- `store`: the connections and the group commit underneath them all.

Every state change and the event it produces are written in one transaction.
"""

from __future__ import annotations

from simhive.agent.journal.delivery import Decide, DeliveryJournal
from simhive.agent.journal.events import EventJournal
from simhive.agent.journal.housekeeping import HousekeepingJournal
from simhive.agent.journal.inbox import InboxJournal
from simhive.agent.journal.loads import SlotLoad
from simhive.agent.journal.outbox import OutboxJournal
from simhive.agent.journal.records import (
    UNKNOWN_AFTER_CRASH,
    HeldReport,
    LeasedMessage,
    OutMessage,
    PendingEvent,
    SentPart,
    iso,
    sent_event,
)
from simhive.agent.journal.release import ReleaseJournal
from simhive.agent.journal.store import JournalError

__all__ = [
    "UNKNOWN_AFTER_CRASH",
    "Decide",
    "HeldReport",
    "Journal",
    "JournalError",
    "LeasedMessage",
    "OutMessage",
    "PendingEvent",
    "SentPart",
    "SlotLoad",
    "iso",
    "sent_event",
]


class Journal(
    OutboxJournal,
    ReleaseJournal,
    DeliveryJournal,
    EventJournal,
    InboxJournal,
    HousekeepingJournal,
):
    """All areas over one file; `open()` before use, `close()` commits what is queued."""
