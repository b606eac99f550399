"""Storage for the native API (/api/v1): API keys, quotas, status history and message views.

Kept apart from `Store` (base.py) so each interface stays readable; every engine implements it
(SQLite: sqlite_native.py, sqlite_groups.py, sqlite_templates.py; PostgreSQL: the pg_ twins of
each). Quota checks happen inside the storing transaction, so concurrent sends cannot together
pass a quota, even through several servers, and a refused send stores nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from simhive.server.core.models import Account, Message, NewMessage
from simhive.server.core.native_models import (
    ApiKey,
    Contact,
    Group,
    MessageQuery,
    Meter,
    NewApiKey,
    PartReport,
    SimLoad,
    SmppLogin,
    StatusChange,
    Template,
)


def message_query_where(
    q: MessageQuery, placeholder: Callable[[int], str]
) -> tuple[str, list[Any]]:
    """query_messages' WHERE clause (over `messages m`) and its values, for either engine:
    `placeholder(n)` writes its mark for the n-th value (SQLite `?`, PostgreSQL `$n`)."""
    optional = (
        ("m.status =", q.status),
        ("m.device_id =", q.device_id),
        ("m.sim =", q.sim),
        ("m.pool_id =", q.pool_id),
        ("m.sendto =", q.number),
        ("m.created >=", q.created_from),
        ("m.created <=", q.created_to),
        ("m.id <", q.before),
    )
    terms = [("m.account_id =", q.account_id), ("m.direction =", q.direction)]
    terms += [(term, value) for term, value in optional if value is not None]
    where = " AND ".join(f"{term} {placeholder(n)}" for n, (term, _) in enumerate(terms, 1))
    return where, [value for _, value in terms]


class NativeStore(ABC):
    # -- groups and contacts (the compat API's tags and contacts) --------------------------
    @abstractmethod
    async def list_groups(self, account_id: int) -> list[Group]: ...

    @abstractmethod
    async def group_by_id(self, account_id: int, group_id: int) -> Group | None: ...

    @abstractmethod
    async def rename_group(self, account_id: int, group_id: int, name: str) -> None: ...

    @abstractmethod
    async def delete_group(self, account_id: int, group_id: int) -> None:
        """The group and its contacts."""

    @abstractmethod
    async def list_contacts(
        self, account_id: int, group_id: int, after: int, limit: int
    ) -> list[Contact]:
        """Contacts with ids above `after`, oldest first."""

    @abstractmethod
    async def add_contacts(
        self, account_id: int, group_id: int, contacts: Sequence[tuple[str, str | None]], now: int
    ) -> tuple[list[int], int]:
        """Add (phone, name) pairs whose phone the group lacks, in one transaction; returns the
        new ids and how many were skipped as already in the group. NotFound without the group."""

    @abstractmethod
    async def delete_contact(self, account_id: int, group_id: int, contact_id: int) -> None: ...

    # -- templates -------------------------------------------------------------------------
    @abstractmethod
    async def create_template(self, account_id: int, name: str, body: str, now: int) -> Template:
        """AlreadyExists if the account has a template of that name."""

    @abstractmethod
    async def template_by_id(self, account_id: int, template_id: int) -> Template | None: ...

    @abstractmethod
    async def list_templates(self, account_id: int) -> list[Template]: ...

    @abstractmethod
    async def update_template(
        self, account_id: int, template_id: int, name: str, body: str, now: int
    ) -> Template:
        """AlreadyExists if another template of the account has that name."""

    @abstractmethod
    async def delete_template(self, account_id: int, template_id: int) -> None: ...

    # -- API keys --------------------------------------------------------------------------
    @abstractmethod
    async def create_api_key(self, key: NewApiKey, now: int) -> ApiKey:
        """AlreadyExists if the account has a live key of that name."""

    @abstractmethod
    async def api_key_by_hash(self, key_hash: str) -> tuple[ApiKey, Account] | None:
        """A live (not revoked) key and its account."""

    @abstractmethod
    async def smpp_login(self, system_id: str) -> tuple[SmppLogin, Account] | None:
        """The unrevoked key whose SMPP login is `system_id` (any letter case), and its
        account."""

    @abstractmethod
    async def list_api_keys(self, account_id: int) -> list[ApiKey]:
        """Every key of the account, revoked ones included, oldest first."""

    @abstractmethod
    async def revoke_api_key(self, account_id: int, key_id: int, now: int) -> ApiKey:
        """NotFound unless a live key of the account."""

    @abstractmethod
    async def touch_api_key(self, key_id: int, now: int) -> None:
        """Record the key's last use."""

    # -- quotas ----------------------------------------------------------------------------
    @abstractmethod
    async def account_quota(self, account_id: int) -> tuple[int | None, int | None]:
        """(daily, monthly) quota of the account; None means no limit."""

    @abstractmethod
    async def set_account_quota(
        self, account_id: int, daily: int | None, monthly: int | None
    ) -> None: ...

    @abstractmethod
    async def quota_used(self, account_id: int, key_id: int, periods: Sequence[str]) -> list[int]:
        """Messages counted on (account, key) for each period, in order."""

    @abstractmethod
    async def insert_metered(
        self,
        messages: Sequence[NewMessage],
        now: int,
        valid_until: int | None,
        meters: Sequence[Meter],
    ) -> list[int]:
        """Store the messages (as insert_messages) and count them on every meter, in one
        transaction; raise QuotaExceeded, writing nothing, if a meter would pass its limit."""

    # -- message views ---------------------------------------------------------------------
    @abstractmethod
    async def query_messages(self, q: MessageQuery) -> list[Message]:
        """A page of messages, newest first."""

    @abstractmethod
    async def message_history(self, sms_id: int) -> list[StatusChange]:
        """The message's status changes after its creation, oldest first."""

    @abstractmethod
    async def prune_message_history(self, before: int, batch: int) -> int:
        """Delete the whole status history of up to `batch` messages whose last change
        (`status_changed`) is older than `before`, or that no longer exist; rows of a message
        still changing after `before` stay. Returns the rows deleted (0: nothing left to do)."""

    @abstractmethod
    async def message_parts(self, sms_id: int) -> list[PartReport]: ...

    @abstractmethod
    async def valid_until(self, sms_id: int) -> int | None: ...

    @abstractmethod
    async def cancel_message(self, account_id: int, sms_id: int, now: int) -> int | None:
        """Cancel a message no agent has committed to (status 1, or 2 whose lease is then void);
        returns the device to wake (or None). NotFound / Conflict otherwise."""

    @abstractmethod
    async def expire_messages(self, now: int) -> int:
        """Status 21 for every status-1 message past its validity; returns how many."""

    @abstractmethod
    async def sim_loads(self, device_id: int, since: int) -> list[SimLoad]:
        """Per SIM of the device: messages waiting for it (status 1-3) and its sent and failed
        counts since `since`."""
