"""The PostgreSQL benchmarks (and the pull check on both engines) run end to end with a tiny N
(no figures are checked)."""

from __future__ import annotations

import pytest

from tests.support.unmeasured import run_benchmark


@pytest.mark.integration
@pytest.mark.parametrize("name", ["pg_drivers", "pg_migrate_index", "pg_scale", "pull_check"])
def test_benchmark_runs(name: str) -> None:
    result = run_benchmark(name, timeout=170)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ratio" in result.stdout
