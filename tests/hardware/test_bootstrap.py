"""scripts/bootstrap keeps one venv for scripts/run-gateway (no extras) and scripts/run-tests (the
test extra): alternating them installs nothing new, because the venv keeps every extra it was given.

The real script runs on a copy of itself beside a small project whose extras are two small
packages, with a venv of its own, so the test costs seconds instead of the full test extra's
install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "bootstrap-probe"
version = "0"

[project.optional-dependencies]
one = ["six"]
two = ["idna"]

[tool.setuptools]
py-modules = []
"""

pytestmark = pytest.mark.integration


def _bootstrap(root: Path, *extras: str, env: dict[str, str] | None = None) -> bool:
    """Run bootstrap; whether it installed anything."""
    done = subprocess.run(
        [str(root / "scripts" / "bootstrap"), *extras],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SIMHIVE_VENV": str(root / "venv"), **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return "installing simhive" in done.stderr


def _has(root: Path, module: str) -> bool:
    python = str(root / "venv" / "bin" / "python")
    return subprocess.run([python, "-c", f"import {module}"], check=False).returncode == 0


def _probe(root: Path) -> None:
    (root / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "bootstrap", root / "scripts" / "bootstrap")
    (root / "pyproject.toml").write_text(PYPROJECT)


def test_alternating_extras_installs_each_once(tmp_path: Path) -> None:
    _probe(tmp_path)

    assert _bootstrap(tmp_path, "one")
    assert _has(tmp_path, "six") and not _has(tmp_path, "idna")
    assert _bootstrap(tmp_path, "two")  # adds two, keeps one
    assert _has(tmp_path, "six") and _has(tmp_path, "idna")
    # run-gateway and run-tests alternating: nothing more to install
    assert not _bootstrap(tmp_path, "one")
    assert not _bootstrap(tmp_path)
    assert not _bootstrap(tmp_path, "two")
    assert not _bootstrap(tmp_path, "one", "two")
    assert (tmp_path / "venv" / ".simhive-installed").read_text().splitlines()[1:] == ["one", "two"]


def test_pip_installs_when_uv_cannot(tmp_path: Path) -> None:
    """uv is the fast way; when it fails (here: told to stay offline with no cache, it has
    nothing to install from), pip installs the same, and the log says why."""
    _probe(tmp_path)
    assert _bootstrap(tmp_path, "one", env={"UV_OFFLINE": "1", "UV_NO_CACHE": "1"})
    assert _has(tmp_path, "six")
    log = (tmp_path / "venv" / "pip-install.log").read_text()
    assert "uv failed; pip instead" in log
    assert not _bootstrap(tmp_path, "one")
