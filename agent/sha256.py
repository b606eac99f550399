"""SHA-256 from CPython's own implementation, not OpenSSL's.

`hashlib` imports `_hashlib`, which loads OpenSSL's libcrypto: about 3.5 MiB of memory in every
agent process, for the two message keys (agent/runner.py, agent/modem/reassembly.py) that are all
it hashes. The built-in module gives the same digests; hashlib itself falls back to it when
OpenSSL is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import sha256
else:
    try:
        from _sha2 import sha256  # CPython 3.12 and later
    except ImportError:
        try:
            from _sha256 import sha256  # CPython 3.11
        except ImportError:  # another interpreter: its hashlib
            from hashlib import sha256

__all__ = ["sha256"]
