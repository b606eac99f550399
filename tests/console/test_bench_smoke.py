"""The console benchmark runs end to end with a tiny N (no figures checked: no timing asserts)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.procs import ROOT


@pytest.mark.integration
def test_console_render_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.console_render", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "ratio page / bare" in result.stdout, result.stderr
    assert "goal: p50 under 50 ms per page" in result.stdout
