"""The PostgreSQL benchmarks run end to end with a tiny N (no figures are checked)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.procs import ROOT


@pytest.mark.integration
@pytest.mark.parametrize("name", ["pg_drivers", "pg_scale"])
def test_benchmark_runs(name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ratio" in result.stdout
