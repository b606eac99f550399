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
                 "ratio pool p50 / pinned p50", "2 batches one after another (medians",
                 "  lowest of the batches", "  highest of the batches",
                 "baseline: bare aiohttp handler process, one request served",
                 "floor of server + agent", "ratio agent + server RSS / floor"):  # fmt: skip
        assert line in result.stdout


def test_throughput_figures_are_the_median_batch_and_memory_the_last() -> None:
    from bench.e2e_latency import median_of_rounds

    figures = ((900.0, 1.3, 85.0), (1400.0, 0.9, 86.0), (1200.0, 1.1, 85.5))
    rounds = [{"send_rate": r, "gateway_cpu_ms_per_sms": c, "gateway_rss_mib": m}
              for r, c, m in figures]  # fmt: skip
    assert median_of_rounds(rounds) == {
        "send_rate": 1200.0, "gateway_cpu_ms_per_sms": 1.1, "gateway_rss_mib": 85.5
    }  # fmt: skip
