"""simhive: a self-hosted SMS gateway.

The installed modules live under this one namespace (simhive.server, simhive.agent,
simhive.hardware) so that nothing generic like `server` lands in site-packages. In the source tree
the three live at the top level; the symlinks here make the same import names work from a checkout,
and pyproject.toml maps the folders into this namespace when a wheel is built.
"""

from __future__ import annotations

import functools


@functools.cache
def _version() -> str:
    # importlib.metadata (with zipfile, email, csv) costs a process about 1 MiB: looked up only
    # when __version__ is asked for (--version, the OpenAPI document), not by every import.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("simhive")
    except PackageNotFoundError:  # a checkout that was never installed
        return "0+unknown"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return _version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
