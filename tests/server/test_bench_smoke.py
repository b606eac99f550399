"""The server benchmarks run end to end with a tiny N (no figures checked: no timing asserts)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.procs import ROOT


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
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--quick", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout
