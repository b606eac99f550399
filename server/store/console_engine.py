"""The console's and /metrics' queries for the engine the server runs on: sqlite_console or
pg_console, the same ConsoleStore over the same tables."""

from __future__ import annotations

from simhive.server.store.console_base import ConsoleStore
from simhive.server.store.sqlite import SqliteStore
from simhive.server.store.sqlite_console import SqliteConsoleStore


def console_store(store: object) -> ConsoleStore | None:
    """The console queries over an (unopened) store; None for an engine that has none, and then
    create_app serves the APIs without the console and /metrics."""
    if isinstance(store, SqliteStore):
        return SqliteConsoleStore(store)
    try:  # only a server given a PostgreSQL URL has the driver (the `postgresql` extra)
        from simhive.server.store.pg import PgStore
        from simhive.server.store.pg_console import PgConsoleStore
    except ImportError:
        return None
    if isinstance(store, PgStore):
        return PgConsoleStore(store)
    return None
