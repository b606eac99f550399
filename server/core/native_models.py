"""Records of the native API's own storage: API keys, quota meters, status history, queries.
Times are UTC microseconds (dates.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass

SCOPES = ("send", "read", "devices", "admin")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    account_id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    allow_get_send: bool
    rate_per_minute: int
    daily_quota: int | None
    monthly_quota: int | None
    created: int
    last_used: int | None = None
    revoked: int | None = None
    # The key's SMPP login (docs/smpp.md): None when the key serves HTTP only.
    smpp_system_id: str | None = None
    smpp_pool: str | None = None

    def allows(self, scope: str) -> bool:
        """`admin` holds every scope."""
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True, slots=True)
class NewApiKey:
    account_id: int
    name: str
    key_hash: str
    prefix: str
    scopes: tuple[str, ...]
    allow_get_send: bool
    rate_per_minute: int
    daily_quota: int | None
    monthly_quota: int | None
    smpp_system_id: str | None = None
    smpp_password_hash: str | None = None  # scrypt (security.hash_password)
    smpp_pool: str | None = None


@dataclass(frozen=True, slots=True)
class SmppLogin:
    """What an SMPP bind checks for a key (never leaves the server)."""

    key: ApiKey
    password_hash: str  # scrypt of the 8-character SMPP password
    key_hash: str  # SHA-256 of the key's own secret, which long-password clients may send


@dataclass(frozen=True, slots=True)
class Meter:
    """One quota counter a send is counted on: the account's (key_id 0) or a key's, for one
    period ('d:YYYY-MM-DD' or 'm:YYYY-MM'); `limit` None counts without limiting.
    `from_account`: the limit is the account's stored quota for the period's kind, read by the
    storing transaction itself (so no send pays a read of its own for it, and a quota changed a
    moment ago applies)."""

    account_id: int
    key_id: int
    period: str
    limit: int | None
    from_account: bool = False


class QuotaExceeded(Exception):
    """Raised by the store inside the storing transaction: nothing was written."""

    def __init__(self, meter: Meter, used: int) -> None:
        super().__init__(meter, used)
        self.meter = meter
        self.used = used


@dataclass(frozen=True, slots=True)
class StatusChange:
    status: int
    at: int
    device_id: int | None
    sim: int | None
    code: str | None


@dataclass(frozen=True, slots=True)
class PartReport:
    """A part the modem sent and the message reference (TP-MR) it got for it."""

    index: int
    reference: int | None


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """A page of the native message list: newest first, ids below `before` (the cursor)."""

    account_id: int
    direction: str = "out"
    status: int | None = None
    device_id: int | None = None
    sim: int | None = None
    pool_id: int | None = None
    number: str | None = None
    created_from: int | None = None
    created_to: int | None = None
    before: int | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class SimLoad:
    """A SIM's queue and today's counts for the device profile."""

    slot: int
    queued: int
    sent_today: int
    failed_today: int


# A template placeholder: `{name}`, a letter or `_` then letters, digits, `_` (templates.py).
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,39})\}")


@dataclass(frozen=True, slots=True)
class Template:
    id: int
    account_id: int
    name: str
    body: str
    created: int
    updated: int

    @property
    def variables(self) -> list[str]:
        return list(dict.fromkeys(PLACEHOLDER.findall(self.body)))


@dataclass(frozen=True, slots=True)
class Group:
    """A contact group: the compat API's tag (savetag/savecontact), so both APIs share them."""

    id: int
    account_id: int
    name: str
    created: int
    contacts: int = 0


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    group_id: int
    phone: str
    name: str | None
    created: int
