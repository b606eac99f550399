"""Which store a `--db` value (or SIMHIVE_DB) names: a PostgreSQL URL, `sqlite:PATH`, or a path.

SQLite stays the default: anything that is not a PostgreSQL URL is a file path. The PostgreSQL
driver is imported only when a URL asks for it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from simhive.server.store.base import Store, StoreError

PG_SCHEMES = ("postgresql://", "postgres://")
SQLITE_PREFIX = "sqlite:"


def is_postgres(db: str | Path) -> bool:
    return isinstance(db, str) and db.startswith(PG_SCHEMES)


def sqlite_path(db: str | Path) -> Path:
    text = str(db)
    if text.startswith(SQLITE_PREFIX):
        text = text[len(SQLITE_PREFIX) :].removeprefix("//")
    return Path(text).expanduser()


def make_store(db: str | Path) -> Store:
    """The store `db` names, not opened yet."""
    if is_postgres(db):
        try:
            from simhive.server.store.pg import PgStore
        except ImportError as exc:  # the `postgresql` extra is not installed
            raise StoreError(
                f"the PostgreSQL store needs asyncpg ({exc}): pip install 'simhive[postgresql]'"
            ) from None
        return PgStore(str(db))
    from simhive.server.store.sqlite import SqliteStore

    return SqliteStore(sqlite_path(db))


def describe(db: str | Path) -> str:
    """`db` for a log line: a URL's password is never shown."""
    if not is_postgres(db):
        return str(sqlite_path(db))
    parts = urlsplit(str(db))
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = "&".join(
        "password=***" if p.startswith("password=") else p for p in parts.query.split("&") if p
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
