"""bench/smpp_submit.py runs end to end with a tiny N (no figures checked: no timing asserts)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.procs import ROOT


@pytest.mark.integration
def test_smpp_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.smpp_submit", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio submit_sm / addalotofsms" in result.stdout
