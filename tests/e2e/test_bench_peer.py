"""The gammu-smsd peer of bench/e2e_latency.py: it runs (tiny N), fails rather than skips when
gammu-smsd is missing, and docs/benchmarks.md states the settings it runs with."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import _peer, _smsd
from tests.support.procs import ROOT
from tests.support.unmeasured import run_benchmark


@pytest.mark.integration
def test_peer_benchmark_runs_gammu_smsd_on_the_same_modems() -> None:
    # No skip when gammu-smsd is missing: scripts/bootstrap test installs it, and a run without
    # it must fail, as the benchmark itself does.
    assert _smsd.missing() is None, _smsd.missing()
    result = run_benchmark("e2e_latency", "--part", "peer", timeout=170)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "simhive against gammu-smsd, the same 2 zero-latency emulated modems" in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.strip().startswith("figure"))
    assert [f"LoopSleep={n}" in header for n in _smsd.LOOP_SLEEPS] == [True] * 2
    for label, _get, unit, _higher in _peer.ROWS:
        row = next(line for line in result.stdout.splitlines() if line.strip().startswith(label))
        # simhive, then per LoopSleep a figure and a ratio, then the unit.
        assert len(row[len(label) + 2 :].split()) == 1 + 2 * len(_smsd.LOOP_SLEEPS) + len(
            unit.split()
        ), row


def test_a_missing_gammu_smsd_fails_the_peer_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither gammu-smsd nor gammu-smsd-inject here
    assert "gammu-smsd is not installed" in str(_smsd.missing())
    with pytest.raises(RuntimeError, match="gammu-smsd is not installed"):
        _peer.run(tmp_path, modems=1, samples=1, messages=1)


def test_the_daemon_config_carries_every_setting(tmp_path: Path) -> None:
    fleet = _smsd.SmsdFleet(tmp_path, ["/dev/null"], loop_sleep=0)
    text = (fleet.dir(0) / "smsdrc").read_text()
    for key, value in {**_smsd.SETTINGS, "LoopSleep": "0"}.items():
        assert f"\n{key} = {value}\n" in text
    assert f"OutboxPath = {fleet.dir(0) / 'outbox'}/" in text
    assert (
        f"OutboxPath = {fleet.dir(0) / 'staging'}/" in (fleet.dir(0) / "inject-smsdrc").read_text()
    )


def test_docs_state_the_settings_gammu_smsd_runs_with() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    for key, value in _smsd.SETTINGS.items():
        assert f"`{key} = {value}`" in doc, key
    for n in _smsd.LOOP_SLEEPS:
        assert f"`LoopSleep = {n}`" in doc
