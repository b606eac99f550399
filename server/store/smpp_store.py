"""The SMPP door's store for the engine the server runs on: sqlite_smpp or pg_smpp, the same
methods over the same tables (migration 10 on both engines)."""

from __future__ import annotations

from simhive.server.store.pg import PgStore
from simhive.server.store.pg_smpp import PgSmppStore
from simhive.server.store.sqlite import SqliteStore
from simhive.server.store.sqlite_smpp import SqliteSmppStore

SmppStore = SqliteSmppStore | PgSmppStore


def smpp_store(store: object) -> SmppStore:
    """Wrap the app's open store; TypeError for an engine without the SMPP tables."""
    if isinstance(store, SqliteStore):
        return SqliteSmppStore(store)
    if isinstance(store, PgStore):
        return PgSmppStore(store)
    raise TypeError(f"the SMPP server has no tables on {type(store).__name__}")
