"""scripts/bootstrap keeps one venv for scripts/run-gateway (no extras) and scripts/run-tests (the
test extra): alternating them installs nothing new, because the venv keeps every extra it was given;
what it installs, and the project's own modules, are left compiled to bytecode.

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
    (root / "agent").mkdir()  # stands for simhive's own packages, installed editable
    (root / "agent" / "probe.py").write_text("VALUE = 1\n")


# Python writes no __pycache__ while this is set, as in this workplace's shells and a service
# whose venv it cannot write: whatever bootstrap did not compile is compiled at every start.
NO_WRITE = {"PYTHONDONTWRITEBYTECODE": "1"}


def _compiled(root: Path, module: str) -> bool:
    """Whether `module` of the probe's venv has a bytecode file that Python would use: its header
    names the source's mtime and size, as Python checks before it runs it. Looked up without
    importing the module (an import could write one)."""
    python = str(root / "venv" / "bin" / "python")
    check = (
        "import importlib.util, os, struct, sys\n"
        f"path = importlib.util.find_spec({module!r}).origin\n"
        "pyc = importlib.util.cache_from_source(path)\n"
        "if not os.path.exists(pyc): sys.exit(1)\n"
        "with open(pyc, 'rb') as f:\n"
        "    magic, flags, mtime, size = struct.unpack('<4sIII', f.read(16))\n"
        "st = os.stat(path)\n"
        "sys.exit(0 if magic == importlib.util.MAGIC_NUMBER and flags == 0"
        " and (mtime, size) == (int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF) else 1)\n"
    )
    env = {**os.environ, **NO_WRITE}
    return subprocess.run([python, "-c", check], env=env, cwd=root, check=False).returncode == 0


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


def test_installs_compiled_bytecode(tmp_path: Path) -> None:
    """The packages and the project's own modules leave bootstrap compiled, so a process that may
    not write bytecode does not compile them at each start; an edited module is compiled again
    by the next bootstrap, even when there is nothing to install."""
    _probe(tmp_path)
    assert _bootstrap(tmp_path, "one", env=NO_WRITE)
    assert _compiled(tmp_path, "six")
    assert _compiled(tmp_path, "agent.probe")

    source = tmp_path / "agent" / "probe.py"
    source.write_text("VALUE = 2\n")
    stat = source.stat()
    os.utime(source, (stat.st_atime, stat.st_mtime + 10))  # same size: only the mtime tells
    assert not _compiled(tmp_path, "agent.probe")
    assert not _bootstrap(tmp_path, "one", env=NO_WRITE)
    assert _compiled(tmp_path, "agent.probe")

    # A module that does not compile (an edit in progress) does not stop bootstrap: it fails
    # where it is imported or linted, with its own error.
    (tmp_path / "agent" / "unfinished").with_suffix(".py").write_text("def broken(:\n")
    assert not _bootstrap(tmp_path, "one", env=NO_WRITE)


def test_pip_installs_when_uv_cannot(tmp_path: Path) -> None:
    """uv is the fast way; when it fails (here: told to stay offline with no cache, it has
    nothing to install from), pip installs the same, and the log says why."""
    _probe(tmp_path)
    assert _bootstrap(tmp_path, "one", env={"UV_OFFLINE": "1", "UV_NO_CACHE": "1"})
    assert _has(tmp_path, "six")
    log = (tmp_path / "venv" / "pip-install.log").read_text()
    assert "uv failed; pip instead" in log
    assert _compiled(tmp_path, "six")
    assert not _bootstrap(tmp_path, "one")
