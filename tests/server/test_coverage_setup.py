"""The coverage settings scripts/run-tests uses (pyproject.toml) count what the processes a
test starts run, under the repository's real folder names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.procs import ROOT, console_script

pytestmark = pytest.mark.integration


def test_a_server_process_started_by_a_measured_test_is_measured(tmp_path: Path) -> None:
    script = (tmp_path / "starts_a_server").with_suffix(".py")  # written here, not in the tree
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database\n" * 100)
    script.write_text(
        "import subprocess\n"
        f"r = subprocess.run([{console_script('simhive-server')!r}, 'account', 'list',"
        f" '--db', {str(bad)!r}], capture_output=True, text=True)\n"
        "assert r.returncode == 2, r.stderr\n"
    )
    # A clean environment: when the suite itself runs under coverage, this is a run of its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["COVERAGE_FILE"] = str(tmp_path / "data" / ".coverage")
    (tmp_path / "data").mkdir()

    def coverage(*args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "coverage", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    coverage("run", str(script))
    coverage("combine", "-q", str(tmp_path / "data"))
    report = coverage("report", "--show-missing")
    # Run only in the server process, and named by their real paths (not simhive/ symlinks).
    measured = {line.split()[0] for line in report.splitlines() if "%" in line}
    assert {"server/store/sqlite_open.py", "server/cli.py"} <= measured, report
    assert not any(name.startswith(("tests/", "simhive/server")) for name in measured), report
