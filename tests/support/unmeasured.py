"""Pause coverage in the test's own process while it only drives a server in another process.

Hypothesis-based fuzzing spends its time generating cases in the test process, where none of
simhive's code runs (the server under test is a subprocess, measured on its own). Coverage's
tracer still costs every Python call there: measured on the /api/v1 fuzz test, 63 s bare
against 112 s traced. Pausing it changes no figure of simhive's coverage."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import coverage

from tests.support.procs import ROOT


@contextmanager
def unmeasured() -> Iterator[None]:
    cov = coverage.Coverage.current()
    if cov is None:  # the suite runs without coverage (SIMHIVE_COVERAGE=0)
        yield
        return
    cov.stop()
    try:
        yield
    finally:
        cov.start()


def run_benchmark(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `python -m bench.<module> --quick ARGS` from the repo, as the benchmark smoke tests
    do, outside coverage: a benchmark's processes repeat paths the other tests measure, and the
    tracer would only slow them (coverage hands its settings to child processes through
    COVERAGE_PROCESS_CONFIG; without it they run bare)."""
    env = {k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--quick", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
