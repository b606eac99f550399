"""What the web console and /metrics read (and the few things the console changes).

Kept apart from `Store` (server/store/base.py) so that the queries of the operator's views, which
scan more than the API's indexed lookups do, live in one place and run on their own database
connection: a metrics scrape or a chart must not hold up an agent's pull or an addsms.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from simhive.server.core.models import Message
from simhive.server.store.sqlite_rows import MESSAGE_COLS

SimKey = tuple[int, int]  # (device_id, slot)


@dataclass(frozen=True, slots=True)
class ConsoleFilter:
    """The console's message list: like MessageFilter, plus a text search and a direction, and
    paged by id (`before_id`: only older messages) rather than by offset."""

    account_id: int
    status: tuple[int, ...] = ()
    device_id: int | None = None
    number: str | None = None
    search: str | None = None
    direction: str | None = None  # 'out', 'in' or None for both
    created_from: int | None = None
    created_to: int | None = None
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class PartRow:
    part_index: int
    reference: int | None
    report_status: int | None
    reported_at: int | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    device_id: int
    kind: str
    sms_id: int | None
    status: int | None
    url: str
    state: str
    attempts: int
    next_attempt: int
    created: int
    delivered_at: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Conversation:
    number: str
    last_id: int
    last_body: str
    last_at: int
    incoming: int


@dataclass(frozen=True, slots=True)
class HourCount:
    device_id: int
    slot: int
    hour: int  # hours since the epoch (UTC)
    sent: int
    delivered: int


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative counts per upper bound (seconds), as Prometheus wants them, plus the sum."""

    buckets: list[tuple[float, int]]
    count: int
    total: float


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A console login as stored (console_sessions, migration 15); times in microseconds."""

    account_id: int
    csrf: str
    started: int
    used: int
    flash: str  # JSON list of [kind, text]


@dataclass
class MetricsSnapshot:
    """Everything /metrics reports from the database, read in one go."""

    # (status, direction, device_id or None, slot or None) -> messages now in that status
    messages: dict[tuple[int, str, int | None, int | None], int] = field(default_factory=dict)
    queue_depth: dict[SimKey, int] = field(default_factory=dict)
    pool_waiting: dict[str, int] = field(default_factory=dict)  # "account/pool" -> waiting
    send_latency: Histogram = field(default_factory=lambda: Histogram([], 0, 0.0))
    report_delay: Histogram = field(default_factory=lambda: Histogram([], 0, 0.0))
    webhooks: dict[str, int] = field(default_factory=dict)  # state -> rows
    webhook_failed_attempts: int = 0  # attempts that failed, over the rows still kept

    # The two engines run the same counting queries (MESSAGE_COUNTS_SQL, POOL_WAITING_SQL);
    # these fold their rows in, so the folding is written once.
    def add_message_counts(self, rows: Iterable[Sequence[Any]]) -> None:
        for status, direction, device_id, sim, n in rows:
            bound = device_id is not None
            key = (int(status), str(direction), *((device_id, sim) if bound else (None, None)))
            self.messages[key] = self.messages.get(key, 0) + int(n)
            if bound and status in (1, 2, 3):
                sim_key = (int(device_id), int(sim))
                self.queue_depth[sim_key] = self.queue_depth.get(sim_key, 0) + int(n)

    def add_pool_waiting(self, rows: Iterable[Sequence[Any]]) -> None:
        for account_id, name, n in rows:
            self.pool_waiting[f"{account_id}/{name}"] = int(n)


MESSAGE_COUNTS_SQL = (
    "SELECT status, direction, device_id, sim, COUNT(*) FROM messages"
    " GROUP BY status, direction, device_id, sim"
)
POOL_WAITING_SQL = (
    "SELECT p.account_id, p.name, COUNT(m.id) FROM pools p LEFT JOIN messages m"
    " ON m.pool_id = p.id AND m.status = 1 AND m.device_id IS NULL GROUP BY p.id"
)
# The FROM parts both engines' views build on (their WHERE clauses differ in placeholders).
OUTBOX_SQL = (
    "SELECT w.id, w.device_id, w.kind, w.sms_id, w.status, w.url, w.state, w.attempts,"
    " w.next_attempt, w.created, w.delivered_at, w.last_error FROM webhook_outbox w"
)
FROM_MESSAGES_SQL = f"SELECT {MESSAGE_COLS} FROM messages m LEFT JOIN pakets p ON p.id = m.paket_id"
US = 1_000_000  # the tables' times are integer microseconds since the epoch (UTC)
HOUR_US = 3600 * US


def like_pattern(text: str) -> str:
    """A LIKE (SQLite) or ILIKE (PostgreSQL) pattern matching `text` anywhere, with the
    wildcards taken literally (the queries say ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def histogram(row: Sequence[Any], bounds: tuple[float, ...]) -> Histogram:
    """The row of either engine's histogram query: count, total (µs), then one count per
    bound (SQLite's SUM of no rows is NULL, hence `or 0`)."""
    return Histogram(
        [(b, int(row[2 + i] or 0)) for i, b in enumerate(bounds)], int(row[0]), float(row[1]) / US
    )


class ConsoleStore(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # -- overview --------------------------------------------------------------------------
    @abstractmethod
    async def queue_depth(self, account_id: int) -> dict[SimKey, int]:
        """Pinned messages not yet sent (new, taken, queued) per SIM of the account."""

    @abstractmethod
    async def counts_since(self, account_id: int, since: int) -> dict[SimKey, dict[int, int]]:
        """Outgoing messages created since `since`, per SIM and current status."""

    @abstractmethod
    async def sim_readiness_of(self, device_ids: list[int]) -> dict[SimKey, tuple[bool, str]]:
        """(ready, reason) per SIM from each device's latest per-SIM pull."""

    # -- messages --------------------------------------------------------------------------
    @abstractmethod
    async def search_messages(self, flt: ConsoleFilter) -> list[Message]:
        """Newest first."""

    @abstractmethod
    async def message_parts(self, sms_id: int) -> list[PartRow]: ...

    @abstractmethod
    async def message_outbox(self, sms_id: int) -> list[OutboxRow]: ...

    @abstractmethod
    async def cancel_message(
        self, account_id: int, sms_id: int, status: int, reason: str, now: int
    ) -> bool:
        """Give a message nobody has taken yet (status 1, no lease) the final `status`; False if
        it is not the account's or has been taken meanwhile."""

    # -- inbox -----------------------------------------------------------------------------
    @abstractmethod
    async def conversations(self, account_id: int, limit: int) -> list[Conversation]:
        """Numbers that texted the account, the most recent first."""

    @abstractmethod
    async def conversation(self, account_id: int, number: str, limit: int) -> list[Message]:
        """Messages from and to `number`, oldest first (the latest `limit`)."""

    # -- webhooks --------------------------------------------------------------------------
    @abstractmethod
    async def outbox(self, account_id: int, state: str | None, limit: int) -> list[OutboxRow]:
        """The account's webhook outbox rows, newest first."""

    @abstractmethod
    async def redeliver(self, account_id: int, row_id: int, now: int) -> bool:
        """Make a delivered or dead row of the account pending again, due now."""

    # -- login sessions (server/core/sessions.py) -------------------------------------------
    @abstractmethod
    async def add_session(
        self, token_hash: str, account_id: int, csrf: str, now: int, expired_before: int
    ) -> None:
        """Store a new session, and delete the sessions last used before `expired_before`."""

    @abstractmethod
    async def session(self, token_hash: str) -> SessionRow | None: ...

    @abstractmethod
    async def touch_session(self, token_hash: str, now: int) -> None:
        """Mark the session used at `now`."""

    @abstractmethod
    async def set_session_flash(self, token_hash: str, flash: str) -> None: ...

    @abstractmethod
    async def end_sessions(self, token_hash: str | None, account_id: int | None = None) -> None:
        """Delete one session (by its hash), or every session of an account."""

    # -- chart and metrics -----------------------------------------------------------------
    @abstractmethod
    async def hourly(self, account_id: int, since: int) -> list[HourCount]:
        """Messages sent (by send time) and delivered of those, per SIM and hour since `since`."""

    @abstractmethod
    async def metrics(
        self, latency_bounds: tuple[float, ...], delay_bounds: tuple[float, ...]
    ) -> MetricsSnapshot: ...
