"""Who may bind: the `Authenticator` interface the SMPP server calls, and its implementation.

The server only knows the interface: `authenticate(system_id, password, client, scopes)` answers
a `Principal` (the account, the API key, a name for logs, and the pool its messages go to unless
`service_type` names one) or raises `AuthError` (wrong credentials), `Forbidden` (a key without
the scopes the bind needs) or `Locked` (too many failures).

`KeyAuthenticator`: SMPP credentials are API keys (server/core/keys.py). system_id names a key's
SMPP login; password is its 8-character SMPP password, checked against a scrypt hash, or, for
clients that take longer passwords, the key's own `shk_` secret, checked like a bearer token. A
revoked key binds no more. Failures count in the gateway's login limits
(server/core/ratelimit.py) keyed by system_id and client address, so failed binds are throttled
exactly like failed logins.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
from dataclasses import dataclass
from typing import Protocol

from simhive.server.core import security
from simhive.server.core.errors import AuthError, Forbidden
from simhive.server.core.gateway import Gateway
from simhive.server.core.keys import KEY_PREFIX, Keys
from simhive.server.core.models import Account
from simhive.server.core.native_models import ApiKey
from simhive.server.core.ratelimit import Locked

BAD_BIND = "system_id or password incorrect"


@dataclass(frozen=True, slots=True)
class Principal:
    account: Account
    key: ApiKey
    name: str  # the system_id, as logs show it
    pool: str | None = None  # default pool of the key's SMPP login; None means `all`


class Authenticator(Protocol):
    async def authenticate(
        self, system_id: str, password: str, client: str | None, scopes: tuple[str, ...]
    ) -> Principal:
        """The principal, or AuthError / Forbidden / Locked."""
        ...


class KeyAuthenticator:
    """system_id names an API key's SMPP login; password is its SMPP password or its secret."""

    def __init__(self, gateway: Gateway, keys: Keys) -> None:
        self.gateway = gateway
        self.keys = keys

    async def authenticate(
        self, system_id: str, password: str, client: str | None, scopes: tuple[str, ...]
    ) -> Principal:
        name = system_id.strip()
        attempt = self.gateway.logins.admit("smpp:" + name.lower(), client)  # raises Locked
        ok = False
        found = None
        try:  # done() in finally: a dropped connection mid-check still counts as a failure
            if attempt.delay > 0:
                await asyncio.sleep(attempt.delay)
            found = await self.gateway.store.smpp_login(name)
            if found is not None and password.startswith(KEY_PREFIX):
                ok = hmac.compare_digest(security.hash_token(password), found[0].key_hash)
            else:
                # An unknown system_id costs a hash check too, so timing does not tell which
                # exist.
                stored = found[0].password_hash if found is not None else _dummy_hash()
                ok = await asyncio.to_thread(security.verify_password, password, stored)
            ok = ok and found is not None
        finally:
            attempt.done(ok)
        if not ok or found is None:
            raise AuthError(BAD_BIND)
        login, account = found
        key = login.key
        missing = [s for s in scopes if not key.allows(s)]
        if missing:
            raise Forbidden(f"API key {key.id} lacks the {missing[0]!r} scope this bind needs")
        await self.keys.touch(key.id)
        return Principal(account, key, key.smpp_system_id or name, key.smpp_pool)


@functools.cache
def _dummy_hash() -> str:
    return security.hash_password(security.new_token())


__all__ = ["Authenticator", "KeyAuthenticator", "Locked", "Principal"]
