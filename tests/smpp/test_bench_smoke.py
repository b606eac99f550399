"""bench/smpp_submit.py runs end to end with a tiny N (no figures checked: no timing asserts)."""

from __future__ import annotations

import pytest

from tests.support.unmeasured import run_benchmark


@pytest.mark.integration
def test_smpp_benchmark_runs() -> None:
    result = run_benchmark("smpp_submit", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ratio submit_sm / addalotofsms" in result.stdout
