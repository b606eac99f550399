"""API keys of the native API: named, scoped, shown once, stored hashed, revocable, rate-limited.

A key is `shk_` and 32 lowercase hex characters (128 random bits); only its SHA-256 digest is
stored, like every token (security.py), plus its first characters so a list can name it. Scopes:
`send` (send and cancel messages), `read` (messages, incoming, pools, devices, balance),
`devices` (change devices and pools), `admin` (keys and quotas; holds every other scope too).

Device tokens serve the agent protocol only, and the compat API's account tokens the compat
API only: /api/v1 refuses both with a code of their own, so a misconfigured client learns why.

A key may also carry an SMPP login (docs/smpp.md, "Credentials"): a `system_id` of at most 15
characters and a generated 8-character password, the longest values SMPP 3.4 allows. The password
is stored as a scrypt hash: its 47 random bits are too few for a bare SHA-256 if the database
leaks, and binds are few, so scrypt's cost is paid rarely.

Each key has a rate limit (requests per minute, a token bucket of that size refilled evenly;
server/core/key_rate.py), held across every server of one database. `last_used` is written at
most once a minute per key, so a busy key does not cost a write per request.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass

from simhive.server.core import limits, security
from simhive.server.core.errors import AuthError, Forbidden, InvalidInput
from simhive.server.core.key_rate import KeyRate, key_rate_for
from simhive.server.core.models import Account
from simhive.server.core.native_models import SCOPES, ApiKey, NewApiKey
from simhive.server.store.base import Store

KEY_PREFIX = "shk_"
BAD_KEY = "Missing, unknown or revoked API key (send Authorization: Bearer shk_...)"
DEVICE_TOKEN = (
    "This is a device token: it serves the agent protocol (/agent/v1) only; /api/v1 takes"
    " API keys (simhive-server key create)"
)
ACCOUNT_TOKEN = (
    "This is an SMSGateway24-compatible account token: it serves /getdata only; /api/v1 takes"
    " API keys (simhive-server key create)"
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the account, and the key when the door is the native API (None: a door
    that holds every scope, such as the admin CLI)."""

    account: Account
    key: ApiKey | None = None

    def require(self, scope: str) -> None:
        if self.key is not None and not self.key.allows(scope):
            raise Forbidden(
                f"This API key lacks the {scope!r} scope",
                details={"needed": scope, "scopes": list(self.key.scopes)},
            )

    @property
    def key_id(self) -> int:
        return self.key.id if self.key is not None else 0


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(
            f"Invalid scopes {unknown or scopes}: one or more of {', '.join(SCOPES)}",
            details={"field": "scopes"},
        )
    return tuple(s for s in SCOPES if s in scopes)  # canonical order, no duplicates


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > limits.MAX_TITLE_CHARS:
        raise InvalidInput(
            f"Invalid key name: 1 to {limits.MAX_TITLE_CHARS} characters", details={"field": "name"}
        )
    return name


# SMPP 3.4 sizes: system_id is a C string of 16 octets, password of 9, each with its NUL.
SMPP_MAX_SYSTEM_ID = 15
SMPP_PASSWORD_CHARS = 8
_SMPP_ALPHABET = string.ascii_letters + string.digits  # 62**8: about 47 bits; binds are throttled
_SMPP_ALLOWED = set(string.ascii_letters + string.digits + "._-")


def check_system_id(system_id: str) -> str:
    if not 1 <= len(system_id) <= SMPP_MAX_SYSTEM_ID or not set(system_id) <= _SMPP_ALLOWED:
        raise InvalidInput(
            f"Invalid SMPP system_id: 1-{SMPP_MAX_SYSTEM_ID} characters of letters, digits, '.',"
            " '_', '-'",
            details={"field": "smpp_system_id"},
        )
    return system_id


def new_smpp_password() -> str:
    return "".join(secrets.choice(_SMPP_ALPHABET) for _ in range(SMPP_PASSWORD_CHARS))


class Keys:
    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock
        self.limiter: KeyRate = key_rate_for(store)
        self._cache: dict[str, tuple[float, ApiKey, Account]] = {}
        self._touched: dict[int, float] = {}

    async def create(
        self,
        account: Account,
        name: str,
        scopes: list[str] | tuple[str, ...],
        *,
        allow_get_send: bool = False,
        rate_per_minute: int = limits.KEY_RATE_PER_MINUTE,
        daily_quota: int | None = None,
        monthly_quota: int | None = None,
        smpp_system_id: str | None = None,
        smpp_password: str | None = None,
        smpp_pool: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (the only time the secret exists in clear). With
        `smpp_password` (new_smpp_password(), shown to the caller once) the key also binds over
        SMPP as `smpp_system_id`, by default the key's prefix."""
        if not 1 <= rate_per_minute <= limits.KEY_RATE_MAX_PER_MINUTE:
            raise InvalidInput(
                f"Invalid rate_per_minute: 1 to {limits.KEY_RATE_MAX_PER_MINUTE}",
                details={"field": "rate_per_minute"},
            )
        for field, quota in (("daily_quota", daily_quota), ("monthly_quota", monthly_quota)):
            if quota is not None and quota < 0:
                raise InvalidInput(f"Invalid {field}: 0 or more", details={"field": field})
        secret = KEY_PREFIX + secrets.token_hex(16)
        prefix = secret[: len(KEY_PREFIX) + 6]
        smpp_hash = None
        if smpp_password is not None:
            smpp_system_id = check_system_id(smpp_system_id or prefix)
            smpp_hash = await asyncio.to_thread(security.hash_password, smpp_password)
        else:
            smpp_system_id = smpp_pool = None
        key = await self.store.create_api_key(
            NewApiKey(
                account_id=account.id,
                name=check_name(name),
                key_hash=security.hash_token(secret),
                prefix=prefix,
                scopes=check_scopes(scopes),
                allow_get_send=allow_get_send,
                rate_per_minute=rate_per_minute,
                daily_quota=daily_quota,
                monthly_quota=monthly_quota,
                smpp_system_id=smpp_system_id,
                smpp_password_hash=smpp_hash,
                smpp_pool=smpp_pool,
            ),
            self.clock(),
        )
        return key, secret

    async def list(self, account: Account) -> list[ApiKey]:
        return await self.store.list_api_keys(account.id)

    async def revoke(self, account: Account, key_id: int) -> ApiKey:
        key = await self.store.revoke_api_key(account.id, key_id, self.clock())
        self._cache.clear()  # this process forgets it at once; others within the cache time
        return key

    async def authenticate(self, secret: str | None) -> Caller:
        """The caller a bearer secret names, within its rate limit."""
        if not secret:
            raise AuthError(BAD_KEY)
        digest = security.hash_token(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            key, account = cached[1], cached[2]
        else:
            found = (
                await self.store.api_key_by_hash(digest) if secret.startswith(KEY_PREFIX) else None
            )
            if found is None:
                raise AuthError(await self._why_not(digest))
            key, account = found
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + limits.TOKEN_CACHE_SECONDS, key, account)
        await self.limiter.take(key)
        await self.touch(key.id)
        return Caller(account, key)

    async def touch(self, key_id: int) -> None:
        """Note the key's use: written at most once per KEY_LAST_USED_SECONDS."""
        now = time.monotonic()
        if now - self._touched.get(key_id, -1e9) >= limits.KEY_LAST_USED_SECONDS:
            self._touched[key_id] = now
            await self.store.touch_api_key(key_id, self.clock())

    async def _why_not(self, digest: str) -> str:
        """Say which other kind of token it is, so a misconfigured client learns why."""
        if await self.store.device_by_token_hash(digest) is not None:
            raise AuthError(DEVICE_TOKEN, code="device_token_refused")
        if await self.store.account_by_token_hash(digest) is not None:
            raise AuthError(ACCOUNT_TOKEN, code="device_token_refused")
        return BAD_KEY
