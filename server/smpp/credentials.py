"""Creating SMPP credentials: the rules for system_id and the generated password."""

from __future__ import annotations

import asyncio
import secrets
import string

from simhive.server.core import security
from simhive.server.core.errors import Conflict, InvalidInput
from simhive.server.core.gateway import Gateway
from simhive.server.core.models import Account
from simhive.server.store.smpp_store import SmppStore
from simhive.server.store.sqlite_smpp import Credential

# SMPP 3.4 sizes: system_id is a C string of 16 octets, password of 9, each with its NUL.
MAX_SYSTEM_ID = 15
PASSWORD_CHARS = 8
_ALPHABET = string.ascii_letters + string.digits  # 62**8: about 47 bits, and binds are throttled
_ALLOWED = set(string.ascii_letters + string.digits + "._-")


def check_system_id(system_id: str) -> str:
    if not 1 <= len(system_id) <= MAX_SYSTEM_ID or not set(system_id) <= _ALLOWED:
        raise InvalidInput(
            f"system_id must be 1-{MAX_SYSTEM_ID} characters of letters, digits, '.', '_', '-'"
        )
    return system_id


async def create_credential(
    gateway: Gateway, store: SmppStore, account: Account, system_id: str, pool: str | None
) -> str:
    """Store a new credential; returns its password (shown once, stored hashed)."""
    check_system_id(system_id)
    if pool is not None:
        await gateway.routing.pool_for_send(account, pool)  # NotFound for an unknown pool
    password = "".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_CHARS))
    hashed = await asyncio.to_thread(security.hash_password, password)
    added = await store.add_credential(
        Credential(system_id, account.id, hashed, pool, gateway.clock())
    )
    if not added:
        raise Conflict(f"system_id {system_id} exists already")
    return password
