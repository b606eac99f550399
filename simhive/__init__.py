"""simhive: a self-hosted SMS gateway.

The installed modules live under this one namespace (simhive.server, simhive.agent,
simhive.hardware) so that nothing generic like `server` lands in site-packages. In the source tree
the three live at the top level; the symlinks here make the same import names work from a checkout,
and pyproject.toml maps the folders into this namespace when a wheel is built.
"""

from simhive._version import VERSION as __version__

__all__ = ["__version__"]
