"""`simhive-server run --history-keep-days N` reaches the app's history pruner; a bad value is a
one-line usage error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import simhive.server.app
from simhive.server.cli import main
from simhive.server.core.history import HistorySettings
from tests.support.procs import ROOT


def test_the_option_sets_the_retention(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(simhive.server.app, "run", lambda *a, **kw: seen.append(kw["history"]))
    db = str(tmp_path / "db.sqlite3")
    for args, days in (([], HistorySettings().keep_days), (["--history-keep-days", "7"], 7),
                       (["--history-keep-days", "0"], 0)):  # fmt: skip
        result = CliRunner().invoke(main, ["run", "--db", db, *args])
        assert result.exit_code == 0, result.output
        assert seen.pop().keep_days == days


def test_a_bad_value_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--db", str(tmp_path / "d"), "--history-keep-days",
                                       "-1"])  # fmt: skip
    assert result.exit_code == 2
    assert "Invalid value for '--history-keep-days'" in result.output


def test_the_docs_quote_the_retention_settings() -> None:
    s = HistorySettings()
    config = (ROOT / "docs" / "configuration.md").read_text()
    assert f"`--history-keep-days` days old (default {s.keep_days})" in config
    assert s.interval_seconds == 3600 and "and then every hour" in config
    assert f"in batches of {s.batch:,} messages" in config
    api = (ROOT / "docs" / "api.md").read_text()
    assert f"The history is kept for {s.keep_days} days after the message's" in api
