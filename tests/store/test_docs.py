"""docs/scaling.md and configuration.md say what the code does: the settings and messages they
quote, and the `db` commands they list."""

from __future__ import annotations

import re

from simhive.server import cli_db
from simhive.server.core import sessions
from simhive.server.store import pg, pg_cluster, pg_console
from tests.support.procs import ROOT

SCALING = (ROOT / "docs" / "scaling.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


def _quoted_number(name: str) -> float:
    found = re.search(rf"(\d+(?:\.\d+)?)(?: s)? \(`{name}`\)", SCALING)
    assert found, f"docs/scaling.md does not quote {name}"
    return float(found.group(1))


def test_settings_in_the_docs_are_the_codes() -> None:
    assert _quoted_number("POOL_SIZE") == pg.POOL_SIZE
    assert _quoted_number("READ_POOL_SIZE") == pg_console.READ_POOL_SIZE
    assert sessions.TOUCH_SECONDS == 60 and "once a minute per session (`TOUCH_SECONDS`)" in SCALING
    assert f"every `LEADER_RETRY_SECONDS` ({pg_cluster.LEADER_RETRY_SECONDS:g} s)" in SCALING
    assert f"every `LEADER_CHECK_SECONDS` ({pg_cluster.LEADER_CHECK_SECONDS:g} s)" in SCALING
    assert pg.NUL_REFUSED in SCALING


def test_every_db_command_is_documented() -> None:
    for name in cli_db.db.commands:
        assert f"`db {name}" in CONFIGURATION, name
        assert f"db {name}" in SCALING, name


def test_the_readme_links_the_page() -> None:
    assert "docs/scaling.md" in (ROOT / "README.md").read_text()
