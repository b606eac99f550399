"""Who may bind: the `Authenticator` interface the SMPP server calls, and its implementations.

The server only knows the interface: `authenticate(system_id, password, client)` answers a
`Principal` (the account, a name for logs, and the pool its messages go to unless `service_type`
names one) or raises `AuthError` / `Locked`. Every implementation counts failures in the
gateway's login limits (server/core/ratelimit.py) keyed by system_id and client address, so
failed binds are throttled exactly like failed logins.

- `CredentialAuthenticator`: SMPP credentials (`simhive-server smpp-credential create`):
  system_id names the credential, password is its 8-character secret, checked against a scrypt
  hash. SMPP clients cap system_id at 15 and password at 8 characters, which rules out reusing
  the 32-character account tokens as passwords.
- `AccountTokenAuthenticator`: system_id is the account's email and password an account API
  token, for clients that allow longer fields (simhive's codec accepts 64 characters each).
- `ByShape` picks one by the system_id's shape (an "@" means an email).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
from dataclasses import dataclass
from typing import Protocol

from simhive.server.core import security
from simhive.server.core.errors import AuthError
from simhive.server.core.gateway import Gateway
from simhive.server.core.models import Account
from simhive.server.core.ratelimit import Locked
from simhive.server.store.smpp_store import SmppStore

BAD_BIND = "system_id or password incorrect"


@dataclass(frozen=True, slots=True)
class Principal:
    account: Account
    name: str  # the system_id, as logs show it
    pool: str | None = None  # default pool of the credential; None means `all`


class Authenticator(Protocol):
    async def authenticate(self, system_id: str, password: str, client: str | None) -> Principal:
        """The principal, or AuthError (wrong credentials) / Locked (too many failures)."""
        ...


class AccountTokenAuthenticator:
    """system_id = account email, password = an account API token."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def authenticate(self, system_id: str, password: str, client: str | None) -> Principal:
        key = system_id.strip().lower()
        attempt = self.gateway.logins.admit(key, client)  # raises Locked
        ok = False
        account: Account | None = None
        try:  # done() in finally: a dropped connection mid-check still counts as a failure
            if attempt.delay > 0:
                await asyncio.sleep(attempt.delay)
            try:
                account = await self.gateway.authenticate(password)
            except AuthError:
                account = None
            ok = account is not None and hmac.compare_digest(
                account.email.lower().encode(), key.encode()
            )
        finally:
            attempt.done(ok)
        if not ok or account is None:
            raise AuthError(BAD_BIND)
        return Principal(account, system_id)


class CredentialAuthenticator:
    """system_id names an SMPP credential; password is checked against its scrypt hash."""

    def __init__(self, gateway: Gateway, store: SmppStore) -> None:
        self.gateway = gateway
        self.store = store

    async def authenticate(self, system_id: str, password: str, client: str | None) -> Principal:
        key = "smpp:" + system_id.strip().lower()
        attempt = self.gateway.logins.admit(key, client)  # raises Locked
        ok = False
        account: Account | None = None
        try:
            if attempt.delay > 0:
                await asyncio.sleep(attempt.delay)
            found = await self.store.credential(system_id.strip())
            # An unknown system_id costs a hash check too, so timing does not tell which exist.
            stored = found.password_hash if found is not None else _dummy_hash()
            ok = await asyncio.to_thread(security.verify_password, password, stored)
            if ok and found is not None:
                account = await self.gateway.store.account_by_id(found.account_id)
            ok = ok and account is not None
        finally:
            attempt.done(ok)
        if not ok or account is None or found is None:
            raise AuthError(BAD_BIND)
        return Principal(account, found.system_id, found.pool)


class ByShape:
    """Email-shaped system_ids go to `emails`, the rest to `names`."""

    def __init__(self, names: Authenticator, emails: Authenticator) -> None:
        self.names = names
        self.emails = emails

    async def authenticate(self, system_id: str, password: str, client: str | None) -> Principal:
        chosen = self.emails if "@" in system_id else self.names
        return await chosen.authenticate(system_id, password, client)


@functools.cache
def _dummy_hash() -> str:
    return security.hash_password(security.new_token())


__all__ = [
    "AccountTokenAuthenticator",
    "Authenticator",
    "ByShape",
    "CredentialAuthenticator",
    "Locked",
    "Principal",
]
