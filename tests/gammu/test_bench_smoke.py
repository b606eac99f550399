"""bench/gammu_send.py runs as scripts/run-benchmarks runs it, with --quick (no timing asserts)."""

from __future__ import annotations

import pytest

from tests.support.unmeasured import run_benchmark


@pytest.mark.integration
def test_gammu_send_benchmark_runs_quick() -> None:
    # An unknown flag too: run-benchmarks passes its arguments to every benchmark.
    result = run_benchmark("gammu_send", "--some-other-bench-flag", timeout=170)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for line in ("gsm7 x1: AT backend median (baseline)", "gsm7 x1: ratio Gammu / AT",
                 "ucs2 x2: Gammu backend median", "start: ratio Gammu / AT",
                 "one modem, 1-part SMS per minute: Gammu backend"):  # fmt: skip
        assert line in result.stdout
