"""Index builds of PostgreSQL migrations that let writes go on (pg_schema.migrate runs them).

A plain CREATE INDEX holds a SHARE lock on its table for the whole build: on `messages` every
send, report and lease of every server waits behind it while it reads what may be millions of
rows. CREATE INDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE instead, which no INSERT, UPDATE
or DELETE conflicts with, at two prices:

- it cannot run inside a transaction block, so it cannot share its migration's transaction:
  the builds run first, each a statement of its own, and the migration's other SQL and its row
  in schema_migrations commit after them, so a version is recorded only once its indexes exist
  and are valid (and the indexes may only use columns that exist before the migration);
- a build that fails or is killed leaves its index behind, marked invalid (pg_index.indisvalid
  false): never used for reads, still written to by every insert. The next run finds it, drops
  it (DROP INDEX CONCURRENTLY, which lets writes go on too) and builds it again; `IF NOT
  EXISTS` would keep it as it is. A valid index of that name is one a run built before it died
  short of recording the version: kept.

A migration declares such builds with `concurrently(...)` in place of its SQL text, each one
written as the plain CREATE INDEX statement it stands for (the catalog ends the same either
way). A schema migrated from nothing builds them in the migration's transaction like any other
CREATE INDEX (pg_schema.migrate): its tables are empty and no server uses them yet.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("simhive.store.migrate")

_STATEMENT = re.compile(
    r"\s*CREATE\s+(?P<unique>UNIQUE\s+)?INDEX\s+(?P<name>[a-z_][a-z0-9_]*)\s+ON\s+(?P<rest>.+?)"
    r"\s*;?\s*",
    re.IGNORECASE | re.DOTALL,
)

# The index `name` in the schema the migration's unqualified names resolve to: its validity, or
# None when there is none.
_VALIDITY = """
SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE c.relname = $1
  AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
"""


@dataclass(frozen=True)
class IndexBuild:
    """One CREATE [UNIQUE] INDEX, as written, and its CONCURRENTLY form."""

    name: str
    statement: str  # the plain form, run inside a transaction
    concurrent: str  # the same index, built without blocking writes

    @classmethod
    def parse(cls, statement: str) -> IndexBuild:
        found = _STATEMENT.fullmatch(statement)
        if found is None or ";" in found["rest"]:
            raise ValueError(f"not one CREATE INDEX statement: {statement!r}")
        unique = "UNIQUE " if found["unique"] else ""
        return cls(
            name=found["name"],
            statement=statement.strip().rstrip(";"),
            concurrent=f"CREATE {unique}INDEX CONCURRENTLY {found['name']} ON {found['rest']}",
        )


@dataclass(frozen=True)
class Concurrently:
    """A migration's index builds on existing tables, then the rest of its SQL (may be empty)."""

    indexes: tuple[IndexBuild, ...]
    then: str

    def in_transaction(self) -> str:
        """All of it as one script, for a schema whose tables were made in this run."""
        return ";\n".join([*(index.statement for index in self.indexes), self.then])


def concurrently(*statements: str, then: str = "") -> Concurrently:
    """The migration builds these indexes (plain CREATE INDEX statements) without blocking
    writes, then runs `then` in its transaction and records its version."""
    if not statements:
        raise ValueError("concurrently() needs at least one CREATE INDEX")
    return Concurrently(tuple(IndexBuild.parse(s) for s in statements), then)


async def build(conn: asyncpg.Connection, index: IndexBuild) -> None:
    """Make `index` exist and be valid, writes to its table going on meanwhile. `conn` must be
    outside any transaction."""
    valid = await conn.fetchval(_VALIDITY, index.name)
    if valid:
        return  # built by a run that stopped before it recorded its version
    if valid is not None:
        log.warning("index %s was left invalid by an interrupted build: rebuilding", index.name)
        await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}")
    log.info("building index %s concurrently (writes go on meanwhile)", index.name)
    await conn.execute(index.concurrent)
