"""scripts/check-install-arch's argument handling. The emulated install itself takes 15-40 minutes
and is run by hand (docs/hardware.md, "Checked on ARM"), not here: these tests only prove that a
wrong call is refused at once, with one line and a hint, before anything is created or mounted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "check-install-arch")
DOC = (ROOT / "docs" / "hardware.md").read_text()


def _refusal(argv: list[str], work: Path) -> str:
    """The script's last stderr line when it refuses: exit 2, nothing left in --work-dir."""
    done = subprocess.run(
        [*argv, "--work-dir", str(work)], capture_output=True, text=True, check=False, timeout=30
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert list(work.iterdir()) == []
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("check-install-arch: "), done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "which architecture? e.g. scripts/check-install-arch armhf"),
        (["sparc"], "unknown ARCH 'sparc': armhf (32-bit Raspberry Pi OS), arm64 (64-bit)"),
        (["armhf", "arm64"], "one ARCH only, got 'armhf' and 'arm64'"),
        (["armhf", "--bogus"], "unknown option '--bogus' (scripts/check-install-arch --help"),
    ],
)
def test_wrong_calls_are_refused_with_a_hint(args: list[str], said: str, tmp_path: Path) -> None:
    assert said in _refusal([SCRIPT, *args], tmp_path)


def test_it_needs_root_and_says_how(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        tmp_path.chmod(0o777)  # so that the refusal, not the directory, is what stops nobody
        nobody = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
    else:
        nobody = []
    said = _refusal([*nobody, SCRIPT, "arm64"], tmp_path)
    assert said.endswith("run as root (debootstrap and chroot need it): sudo " + SCRIPT + " arm64")


def test_help_lists_each_architecture_and_the_docs_say_how_to_run_it() -> None:
    done = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, check=True)
    for arch in ("armhf", "arm64", "amd64"):
        assert arch in done.stdout
    for arch in ("armhf", "arm64"):
        assert f"sudo scripts/check-install-arch {arch}" in DOC
