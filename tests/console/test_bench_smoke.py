"""The console benchmark runs end to end with a tiny N (no figures checked: no timing asserts)."""

from __future__ import annotations

import pytest

from tests.support.unmeasured import run_benchmark


@pytest.mark.integration
def test_console_render_benchmark_runs() -> None:
    result = run_benchmark("console_render", timeout=120)
    assert "ratio page / bare" in result.stdout, result.stderr
    assert "goal: p50 under 50 ms per page" in result.stdout
