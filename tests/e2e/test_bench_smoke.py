"""bench/e2e_latency.py runs end to end with a tiny N (no figures checked: no timing asserts)."""

from __future__ import annotations

import pytest

from tests.support.unmeasured import run_benchmark


@pytest.mark.integration
def test_e2e_benchmark_runs() -> None:
    result = run_benchmark("e2e_latency", "--part", "scale", timeout=170)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for line in ("accept -> AT+CMGS p50", "baseline: addsms HTTP round trip p50",
                 "baseline: direct AT+CMGS", "agent CPU per SMS", "agent + server CPU per SMS",
                 "agent + server RSS at the end", "agent peak RSS",
                 "pool of all SIMs: accept -> AT+CMGS p50",
                 "ratio pool p50 / pinned p50",
                 "baseline: bare aiohttp handler process, one request served",
                 "floor of server + agent", "ratio agent + server RSS / floor"):  # fmt: skip
        assert line in result.stdout
