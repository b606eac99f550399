"""`simhive-server db ...`: schema migrations and moving an installation to PostgreSQL
(docs/scaling.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from simhive.server.cli import _db, db_option, emit, main
from simhive.server.store import sqlite_schema
from simhive.server.store.base import StoreError
from simhive.server.store.engine import describe, is_postgres, sqlite_path

T = TypeVar("T")


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except StoreError as exc:
        raise click.ClickException(f"{exc}") from None


@main.group()
def db() -> None:
    """The database: schema migrations, and moving an installation to PostgreSQL."""


@db.command("migrate")
@db_option
def db_migrate(db: str | None) -> None:
    """Bring the database's schema to this simhive's version (servers do it when they start;
    run it before starting several servers of a new version). Prints the version."""
    target = _db(db)
    if is_postgres(target):
        from simhive.server.store.pg import PgStore
        from simhive.server.store.pg_schema import LATEST_VERSION

        version = _run(PgStore(str(target)).migrate())
        latest = LATEST_VERSION
    else:
        import sqlite3

        path = sqlite_path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, timeout=10)
            try:
                version = sqlite_schema.migrate(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise click.ClickException(f"cannot migrate {path}: {exc}") from None
        latest = sqlite_schema.LATEST_VERSION
    emit({"database": describe(target), "version": version, "latest": latest})


@db.command("copy")
@click.option(
    "--from", "source", required=True, metavar="sqlite:PATH",
    help="The SQLite database to copy (brought to the latest schema, else not changed).",
)  # fmt: skip
@click.option(
    "--to", "target", required=True, metavar="postgresql://...",
    help="An empty PostgreSQL database (the schema is created).",
)  # fmt: skip
def db_copy(source: str, target: str) -> None:
    """Copy every row of a SQLite installation into an empty PostgreSQL database, in one
    transaction. Stop the server first; point it at the new database after."""
    if is_postgres(source) or not is_postgres(target):
        raise click.UsageError("copy goes from sqlite:PATH (or a path) to a postgresql:// URL")
    from simhive.server.store.pg import PgStore
    from simhive.server.store.pg_copy import copy_sqlite_to_pg

    path: Path = sqlite_path(source)
    result = _run(copy_sqlite_to_pg(path, PgStore(target)))
    emit({"from": str(path), "to": describe(target), "rows": result.tables})
