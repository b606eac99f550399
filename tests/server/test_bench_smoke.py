"""The server benchmarks run end to end with a tiny N (no figures checked: no timing asserts)."""

from __future__ import annotations

import pytest

from tests.support.unmeasured import run_benchmark


@pytest.mark.integration
@pytest.mark.parametrize(
    "name, options",
    [
        ("server_ingest", ()),
        ("server_addsms", ()),
        ("server_addsms", ("--new-connections",)),
        ("server_scale", ()),
        ("api_bulk", ()),
    ],
)
def test_benchmark_runs(name: str, options: tuple[str, ...]) -> None:
    result = run_benchmark(name, *options, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout


@pytest.mark.integration
def test_store_agent_counts() -> None:
    # a counting harness (statements, or instructions under callgrind): no ratio to print
    result = run_benchmark("store_agent", "--count", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "SAVEPOINT" in result.stdout and "8 SMS" in result.stdout, result.stdout
