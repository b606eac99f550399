"""The SMPP door's store for the engine the server runs on: sqlite_smpp or pg_smpp, the same
methods over the same tables (migration 10 on both engines). The PostgreSQL side is imported only
when it is used: its driver is an optional extra (`postgresql`), not installed by default."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from simhive.server.store.sqlite import SqliteStore
from simhive.server.store.sqlite_smpp import SqliteSmppStore

if TYPE_CHECKING:
    from simhive.server.store.pg_smpp import PgSmppStore

    SmppStore: TypeAlias = SqliteSmppStore | PgSmppStore
else:  # annotations only (they are strings at run time): no driver import for the alias
    SmppStore = SqliteSmppStore


def smpp_store(store: object) -> SmppStore:
    """Wrap the app's open store; TypeError for an engine without the SMPP tables."""
    if isinstance(store, SqliteStore):
        return SqliteSmppStore(store)
    if type(store).__module__.startswith("simhive.server.store.pg"):
        from simhive.server.store.pg import PgStore
        from simhive.server.store.pg_smpp import PgSmppStore

        if isinstance(store, PgStore):
            return PgSmppStore(store)
    raise TypeError(f"the SMPP server has no tables on {type(store).__name__}")
