"""Device enrollment: a short-lived, single-use code an agent swaps for its device token.

`POST /api/v1/devices` makes a device, shows its token once, and issues a code with the exact
command to run on the agent's host: `simhive-agent enroll URL CODE`. That command posts the code
to `/agent/v1/enroll` and gets the device token back, so the token never has to be typed or
copied between machines.

A code is 16 characters from a 31-letter alphabet without look-alikes (79 random bits), shown in
groups of four; dashes, spaces and case do not matter. It is valid for ENROLL_CODE_SECONDS and
works once. The server stores only its SHA-256 digest, and the token sealed with a key derived
from the code (an XOR with a SHA-256 keystream: the code's 79 bits are the key, so the stored row
alone reveals nothing) and erased when the code is used.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from simhive.server.core.errors import AuthError
from simhive.server.store.base import Store

ENROLL_CODE_SECONDS = 15 * 60
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # 31 letters (no I, L, O, 0, 1): ~4.95 bits each
CODE_CHARS = 16
BAD_CODE = "Unknown, used or expired enrollment code (create the device again for a new one)"


def command(base_url: str, code: str) -> str:
    """The exact command the agent's host runs; the API's answer and the console show this one."""
    return f"simhive-agent enroll {base_url} {code}"


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_CHARS, 4))


def canonical(code: str) -> str | None:
    """The code without dashes or spaces, upper case; None if it cannot be one."""
    text = code.replace("-", "").replace(" ", "").upper()
    if len(text) != CODE_CHARS or any(c not in ALPHABET for c in text):
        return None
    return text


def code_hash(code: str) -> str:
    return hashlib.sha256(b"enroll-id:" + code.encode()).hexdigest()


def _stream(code: str, n: int) -> bytes:
    key = hashlib.sha256(b"enroll-key:" + code.encode()).digest()
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(key + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:n]


def seal(token: str, code: str) -> str:
    data = token.encode()
    return bytes(a ^ b for a, b in zip(data, _stream(code, len(data)), strict=True)).hex()


def unseal(sealed: str, code: str) -> str:
    data = bytes.fromhex(sealed)
    return bytes(a ^ b for a, b in zip(data, _stream(code, len(data)), strict=True)).decode(
        errors="replace"
    )


class Enrollment:
    def __init__(self, store: Store, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock

    async def issue(self, account_id: int, device_id: int, token: str) -> tuple[str, int]:
        """A new code for the device and when it expires."""
        shown = new_code()
        code = canonical(shown)
        assert code is not None
        now = self.clock()
        expires = now + ENROLL_CODE_SECONDS * 1_000_000
        await self.store.create_enrollment(
            code_hash(code), account_id, device_id, seal(token, code), expires, now
        )
        return shown, expires

    async def redeem(self, raw: str) -> tuple[int, str]:
        """(device id, device token) for a valid code, which is then used up."""
        code = canonical(raw)
        if code is None:
            raise AuthError(BAD_CODE)
        found = await self.store.redeem_enrollment(code_hash(code), self.clock())
        if found is None:
            raise AuthError(BAD_CODE)
        device_id, sealed = found
        return device_id, unseal(sealed, code)
