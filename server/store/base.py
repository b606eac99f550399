"""The storage interface the core depends on.

Implementations keep every SQL dialect detail inside themselves, so a PostgreSQL store can be added
next to the SQLite one. Writes are acknowledged only once they are durable on disk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from simhive.server.core.models import (
    Account,
    Device,
    DeviceFacts,
    IncomingMessage,
    Lease,
    Message,
    MessageFilter,
    NewMessage,
    NewPaket,
    PaketResult,
    ReportEvent,
    Sim,
)
from simhive.server.core.native_models import Meter
from simhive.server.core.notifier import WorkNotifier
from simhive.server.core.pools import Pool, PoolSim, SimOffer
from simhive.server.core.ratelimit import SharedAttempt
from simhive.server.startup import StartupError
from simhive.server.store.account_webhooks_base import AccountWebhookStore
from simhive.server.store.agent_base import AgentExtrasStore
from simhive.server.store.campaigns_base import CampaignStore
from simhive.server.store.devices_base import DeviceAdminStore
from simhive.server.store.idempotency_base import IdempotencyStore
from simhive.server.store.native_base import NativeStore
from simhive.server.store.otp_base import OtpStore

# A store-specific follow-up of insert_messages (see there): called with the engine's connection
# and the ids. SQLite's runs on its writer thread with a sqlite3.Connection and returns None;
# PostgreSQL's gets the asyncpg connection of the transaction and returns an awaitable, awaited
# there. A door keeping rows of its own builds the one of its engine (sqlite_smpp / pg_smpp).
AfterInsert = Callable[[Any, list[int]], Awaitable[None] | None]


class StoreError(Exception):
    """A storage failure that is not the client's fault (disk full, corrupt database, ...)."""


class DuplicateEmail(StoreError):
    pass


class StoreOpenError(StoreError, StartupError):
    """The store cannot be opened (no such directory, not a database, read-only, ...): a
    start-up failure with a hint for the operator, not a fault to retry."""

    def __init__(self, cause: str, hint: str) -> None:
        StartupError.__init__(self, cause, hint)


class AgentStore(ABC):
    """Storage for the agent protocol. Every method also records the device as seen at `now`."""

    @abstractmethod
    async def update_device_facts(
        self, device_id: int, facts: DeviceFacts, sims: Sequence[Sim] | None, now: int
    ) -> None:
        """Store hello facts; `sims` (when given) replaces the device's SIM rows."""

    @abstractmethod
    async def replace_sims(self, device_id: int, sims: Sequence[Sim] | None, now: int) -> None:
        """Replace the device's SIM rows (when given) from a `status` call."""

    @abstractmethod
    async def due_state(self, device_id: int, now: int) -> tuple[bool, int | None]:
        """(whether a pull would find work now, the next future due time if none is due)."""

    @abstractmethod
    async def lease_due(
        self, device_id: int, limit: int, lease_id: str, now: int, expires: int
    ) -> Lease:
        """Return expired leases of the device to the queue, then lease up to `limit` due
        messages (urgent first, then due time, then id): status 2, attempt + 1."""

    @abstractmethod
    async def offer_sims(self, device_id: int, offers: Sequence[SimOffer], now: int) -> None:
        """Record what a per-SIM pull says of each SIM (ready or why not, pool room) and that
        the device was seen; a SIM the pull leaves out is not ready."""

    @abstractmethod
    async def sim_readiness(self, device_id: int, slot: int) -> tuple[bool, str] | None:
        """(ready, reason) from the SIM's latest per-SIM pull; None if it never offered."""

    @abstractmethod
    async def due_state_sims(
        self, device_id: int, account_id: int, offers: Sequence[SimOffer], now: int
    ) -> tuple[bool, int | None]:
        """`due_state` for a per-SIM pull: pinned work of the offered ready SIMs, and waiting
        messages of the pools those SIMs are in."""

    @abstractmethod
    async def lease_sims(
        self,
        device_id: int,
        offers: Sequence[SimOffer],
        limit: int,
        lease_id: str,
        now: int,
        expires: int,
        seen_after: int,
        rand: Callable[[], float],
    ) -> tuple[Lease, set[int]]:
        """A per-SIM pull's lease (docs/routing.md), after `offer_sims` stored the offers: return
        the device's expired leases, then give each ready SIM its pinned work and bind pool messages
        to it, urgent first, at most `room` per SIM and `pool_room` of them from pools. Pool
        rules count only SIMs ready in their device's latest pull and seen since `seen_after`.
        Returns the lease and the other devices to wake for pool messages still waiting."""

    @abstractmethod
    async def release_messages(
        self, device_id: int, ids: Sequence[int], now: int
    ) -> tuple[list[int], list[int], set[int]]:
        """The agent hands back messages it has not started: pool messages leased or committed
        to the device go back to their pool unbound. Returns (released: no longer the device's
        to send, kept: its pinned ones, devices to wake for the released ones)."""

    @abstractmethod
    async def commit_lease(
        self, device_id: int, lease_id: str, ids: Sequence[int], now: int
    ) -> tuple[list[int], list[int]]:
        """(committed, rejected). Repeating a commit answers the same lists."""

    @abstractmethod
    async def release_leases(
        self,
        device_id: int,
        now: int,
        *,
        lease_ids: Sequence[str] | None = None,
        keep: Sequence[str] = (),
    ) -> int:
        """Hand the device's uncommitted leases back to the queue before they expire: those in
        `lease_ids`, or every one not in `keep` when `lease_ids` is None. Their lease id is
        cleared, so a late commit of it is rejected. Returns how many messages went back."""

    @abstractmethod
    async def apply_events(
        self, device_id: int, events: Sequence[ReportEvent], now: int
    ) -> list[str]:
        """Apply each event at most once; returns the ids applied now or before."""

    @abstractmethod
    async def store_incoming(
        self, account_id: int, device_id: int, messages: Sequence[IncomingMessage], now: int
    ) -> list[tuple[str, int]]:
        """Store each key once as status 5; a repeated key answers its first sms_id."""


class PoolStore(ABC):
    """Pools of SIMs (server/core/pools.py). Names are unique per account."""

    @abstractmethod
    async def create_pool(
        self, account_id: int, name: str, strategy: str, sticky: bool, now: int
    ) -> Pool:
        """A named pool; Conflict if the account has one of that name."""

    @abstractmethod
    async def implicit_pool(self, account_id: int, device_id: int | None, now: int) -> Pool:
        """The account's pool `all` (device_id None) or the device's own, made on first use."""

    @abstractmethod
    async def pool_by_name(self, account_id: int, name: str) -> Pool | None: ...

    @abstractmethod
    async def list_pools(self, account_id: int) -> list[Pool]: ...

    @abstractmethod
    async def update_pool(
        self, pool_id: int, *, strategy: str | None = None, sticky: bool | None = None
    ) -> None:
        """Change the strategy (which starts a new cycle) and/or stickiness."""

    @abstractmethod
    async def delete_pool(self, pool_id: int) -> None:
        """Conflict while any of its messages is unsent; sent ones keep their SIM."""

    @abstractmethod
    async def set_pool_sim(self, pool_id: int, device_id: int, slot: int, weight: int) -> None:
        """Add a SIM to a named pool, or change its weight."""

    @abstractmethod
    async def remove_pool_sim(self, pool_id: int, device_id: int, slot: int) -> None:
        """NotFound if the SIM is not a member."""

    @abstractmethod
    async def pool_sims(self, pool_id: int) -> list[PoolSim]:
        """Members (named pools) and rotation counters (every pool)."""

    @abstractmethod
    async def pool_waiting(self, pool_id: int) -> int:
        """Messages of the pool waiting for a SIM."""

    @abstractmethod
    async def pool_wake_candidates(self, pool_id: int, seen_after: int, limit: int) -> set[int]:
        """Up to `limit` devices with a SIM of the pool that was ready with pool room in its
        device's latest pull (seen since `seen_after`), the most room first."""


class Store(
    AgentStore,
    PoolStore,
    AgentExtrasStore,
    IdempotencyStore,
    NativeStore,
    CampaignStore,
    DeviceAdminStore,
    OtpStore,
    AccountWebhookStore,
):
    """Everything the server stores; the agent protocol's part is in AgentStore."""

    # -- life cycle ------------------------------------------------------------------------
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    # -- several servers on one database (docs/scaling.md) ---------------------------------
    async def share_wakeups(
        self, notifier: WorkNotifier, on_webhooks: Callable[[], None] | None = None
    ) -> None:
        """Relay the notifier's wake-ups to the other servers of the database and theirs to it,
        and call `on_webhooks` when any server wrote webhook outbox rows (after open). One
        server per database (SQLite) has nothing to share."""

    async def run_once_in_cluster(self, job: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a background job (`run` returns only when cancelled) so that one server of the
        database runs it at a time; a server that takes over starts it anew. One server per
        database (SQLite) simply runs it."""
        await run()

    # -- limits shared by several servers (server/core/ratelimit.py, key_rate.py) ----------
    def shares_limits(self) -> bool:
        """Whether login failures, login slow-downs and API keys' rate limits must be counted in
        the database (several servers) rather than in each server's memory (one server:
        SQLite). The methods below serve the first case only."""
        return False

    async def login_begin(
        self,
        limits: Sequence[tuple[str, int]],
        paces: Sequence[tuple[str, int, int]],
        since: int,
        now: int,
        max_wait: int,
    ) -> SharedAttempt:
        """Count a login attempt under each (key, max failures) of `limits` as a failure until
        judged, and give it a slot under each (key, after, interval) of `paces`, all or none.

        A pace key with `after` failures since `since` spaces attempts `interval` apart: the
        attempt starts at the latest of now and those keys' next free slots, which then move
        to that start plus their interval. Refused, with nothing recorded, when a key of
        `limits` already has its maximum of failures since `since` (until its oldest counted
        failure falls out of the window) or when the start is more than `max_wait` away."""
        raise NotImplementedError

    async def login_end(
        self, ids: Sequence[int], ok: bool, clear: str | None, failures: Sequence[str], now: int
    ) -> None:
        """The attempt was judged: a failure stays counted, and is counted at `now` under each
        pace key of `failures`; a success removes its rows and every failure of the key
        `clear`."""
        raise NotImplementedError

    async def rate_take(
        self, key_id: int, account_id: int, rate: int, now: int
    ) -> tuple[bool, float | None]:
        """Take one token from the API key's bucket (`rate` per minute, holding at most
        `rate`), atomically across servers: (taken, tokens) where tokens is what is left after
        a take, or, when refused, what the bucket held (None: not known)."""
        raise NotImplementedError

    # -- accounts --------------------------------------------------------------------------
    @abstractmethod
    async def create_account(
        self, email: str, password_hash: str, token_hash: str, timezone: str, now: int
    ) -> Account: ...

    @abstractmethod
    async def account_by_email(self, email: str) -> Account | None: ...

    @abstractmethod
    async def account_by_id(self, account_id: int) -> Account | None: ...

    @abstractmethod
    async def account_by_token_hash(self, token_hash: str) -> Account | None: ...

    @abstractmethod
    async def list_accounts(self) -> list[Account]: ...

    @abstractmethod
    async def update_account(
        self, account_id: int, *, password_hash: str | None = None, timezone: str | None = None
    ) -> None:
        """Change the password hash and/or the time zone (None keeps the stored value)."""

    @abstractmethod
    async def add_account_token(
        self, account_id: int, token_hash: str, now: int, *, keep: int, revoke_others: bool = False
    ) -> None:
        """Add a token; keep at most `keep` newest (or only this one with revoke_others)."""

    # -- devices ---------------------------------------------------------------------------
    @abstractmethod
    async def create_device(
        self, account_id: int, title: str, token_hash: str, now: int
    ) -> Device: ...

    @abstractmethod
    async def device_by_id(self, device_id: int) -> Device | None: ...

    @abstractmethod
    async def device_by_token_hash(self, token_hash: str) -> Device | None: ...

    @abstractmethod
    async def list_devices(self, account_id: int | None = None) -> list[Device]: ...

    @abstractmethod
    async def set_device_token(self, device_id: int, token_hash: str) -> None: ...

    @abstractmethod
    async def set_device_prefix_rules(
        self, device_id: int, rules: Sequence[tuple[str, str]]
    ) -> None: ...

    @abstractmethod
    async def sims_of(self, device_ids: Sequence[int]) -> dict[int, list[Sim]]: ...

    @abstractmethod
    async def touch_device(self, device_id: int, now: int) -> None:
        """Record that the device's agent was seen now (`lastseen`)."""

    # -- deleting (what goes: docs/configuration.md, "Deleting accounts and devices") ---------
    @abstractmethod
    async def delete_device(
        self, device_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        """Delete the device with its SIMs and messages in one transaction; its taken, not yet
        committed messages of shared pools go back to their pool. Returns counts of what was
        (with dry_run: would be) deleted: sims, messages, unsent_messages, incoming_messages,
        messages_back_to_pool."""

    @abstractmethod
    async def delete_account(
        self, account_id: int, now: int, *, dry_run: bool = False
    ) -> dict[str, int]:
        """Delete the account, its devices (as delete_device), tokens, pools, tags, contacts
        and messages in one transaction. Returns counts: devices, messages, unsent_messages,
        pools (named), tags, contacts."""

    # -- messages --------------------------------------------------------------------------
    @abstractmethod
    async def insert_messages(
        self,
        messages: Sequence[NewMessage],
        now: int,
        then: AfterInsert | None = None,
        meters: Sequence[Meter] = (),
    ) -> list[int]:
        """Store all messages atomically (all or none) as status 1; ids in input order.

        Each message is counted on every meter (quotas, server/core/quotas.py) in the same
        transaction; when one would pass its limit, QuotaExceeded is raised and nothing written.

        `then(connection, ids)` runs in the same transaction after the insert, for a door that
        keeps rows of its own about the messages (SMPP's receipt requests): both are written or
        neither, so a crash between them cannot leave a message without its row. An exception
        from `then` undoes the insert and is raised to the caller. It is of the store's kind
        (AfterInsert): SQLite calls it synchronously with its sqlite3 connection, PostgreSQL
        awaits it with the transaction's asyncpg connection; the other kind is a TypeError."""

    @abstractmethod
    async def message_by_id(self, account_id: int, sms_id: int) -> Message | None: ...

    @abstractmethod
    async def list_messages(self, flt: MessageFilter) -> list[Message]: ...

    @abstractmethod
    async def count_messages(self, flt: MessageFilter) -> int: ...

    # -- tags, contacts, pakets ------------------------------------------------------------
    @abstractmethod
    async def create_tag(self, account_id: int, title: str, now: int) -> int: ...

    @abstractmethod
    async def existing_tags(self, account_id: int, tag_ids: Sequence[int]) -> set[int]: ...

    @abstractmethod
    async def create_contact(
        self, account_id: int, tag_id: int, phone: str, fullname: str | None, now: int
    ) -> int: ...

    @abstractmethod
    async def create_paket(self, paket: NewPaket, now: int) -> PaketResult:
        """Store the paket and one status-1 message per distinct contact phone of its tags."""
