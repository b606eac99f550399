"""Passwords and tokens.

Passwords: scrypt (memory-hard, in the standard library) with N=2**14, r=8, p=1, 16-byte salt and
a 32-byte key, about 16 MiB and tens of milliseconds per check; the parameters are stored with each
hash so they can be raised later without invalidating old hashes.

Tokens: 32 lowercase hex characters (128 random bits), the form SMSGateway24 clients expect. They
are shown once and stored as SHA-256 digests: a slow KDF buys nothing for 128-bit random secrets,
and a fast digest lets every request be authenticated with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=SCRYPT_DKLEN,
        maxmem=_MAXMEM,
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a hash made by hash_password."""
    try:
        scheme, n, r, p, salt_hex, key_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(key_hex)
        key = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=_MAXMEM,
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(key, expected)


def new_token() -> str:
    return secrets.token_hex(16)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)


def looks_like_token(token: str) -> bool:
    """Cheap shape check before any lookup: 32 lowercase hex characters."""
    return len(token) == 32 and all(c in "0123456789abcdef" for c in token)
