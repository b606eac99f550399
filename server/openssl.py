"""OpenSSL only when the server uses it: imported first by server/cli.py.

A plain-HTTP server on SQLite has no use for OpenSSL, yet the standard library loads it at once:
asyncio and aiohttp `import ssl` (libssl and libcrypto), and `secrets`, `hmac` and `hashlib`
import `_hashlib` (libcrypto). Together about 7 MiB of a server's memory (docs/benchmarks.md).
Each of them imports OpenSSL's module only if it can (`try: import ... except ImportError`) and
has its own way without it: hashlib and hmac use CPython's built-in SHA-2 and BLAKE2, which give
the same digests. So these modules are imported here with `ssl` and `_hashlib` blocked (a `None`
entry in sys.modules, the import system's documented way), and the block is lifted at once: any
later `import ssl` or `import _hashlib` works as usual. What needs OpenSSL loads it then:

- TLS (an HTTPS or SMPPS listener, PostgreSQL's driver, an https webhook) calls `load_ssl()`.
  asyncio bound `ssl = None` when it was imported; `load_ssl()` gives its three modules the
  real one, which they look up only when a TLS connection is made (the one value derived from
  it at import, sslproto's `SSLAgainErrors`, is derived again). aiohttp's client cannot be
  given it back (its exception classes were built without ssl), so the server's HTTP client
  is agent/http.py's, on asyncio's streams (server/background.py).
- scrypt and PBKDF2, which exist only in OpenSSL (`hashlib.scrypt` is `_hashlib.scrypt`), are
  taken from `_hashlib` at the first password hash or check (server/core/security.py).

`python -c "import simhive.server.cli"` in a process that has loaded OpenSSL already (the tests
that run the server in process) changes nothing: what is loaded stays.
"""

from __future__ import annotations

import sys
from types import ModuleType

# The modules the server imports that would load OpenSSL (the rest import these): asyncio (ssl),
# secrets (hmac, which imports _hashlib), hashlib (_hashlib).
STDLIB = ("asyncio", "hashlib", "hmac", "secrets")
# aiohttp imports ssl (its client); server/cli.py imports it with import_without_openssl too.
BLOCKED = ("ssl", "_hashlib")


def import_without_openssl(*modules: str) -> None:
    """Import `modules` with ssl and _hashlib blocked (those not loaded yet), then unblock."""
    import importlib

    blocked = [name for name in BLOCKED if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        for name in blocked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


def load_ssl() -> ModuleType:
    """The `ssl` module, loaded now if it was not, and given to asyncio if asyncio was imported
    without it; call before anything makes or accepts a TLS connection."""
    import asyncio.base_events
    import asyncio.selector_events
    import asyncio.sslproto
    import ssl

    for module in (asyncio.base_events, asyncio.selector_events, asyncio.sslproto):
        if getattr(module, "ssl", ssl) is None:
            setattr(module, "ssl", ssl)  # noqa: B010  (not in the modules' type stubs)
    if not hasattr(asyncio.sslproto, "SSLAgainErrors"):
        setattr(asyncio.sslproto, "SSLAgainErrors", (ssl.SSLWantReadError, ssl.SSLSyscallError))  # noqa: B010
    return ssl


import_without_openssl(*STDLIB)
