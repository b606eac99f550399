"""`systemd-analyze` on unit files, for the deploy tests: the exposure score and verify.

Both work on unit files without a running systemd (`security --offline=true`), so the tests run
the same in a container as on a Pi.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

_OVERALL = re.compile(r"Overall exposure level for \S+: ([0-9.]+) (\w+)")


def security(unit: Path) -> tuple[float, str, str]:
    """The exposure score (0 = locked down, 10 = exposed), its word (OK, MEDIUM, EXPOSED, ...) and
    the full table, as `systemd-analyze security` rates the unit file."""
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", unit.name],
        cwd=unit.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    found = _OVERALL.search(out.stdout)
    assert found, f"no score from systemd-analyze security {unit}: {out.stdout}{out.stderr}"
    return float(found.group(1)), found.group(2), out.stdout


def verify(*units: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on unit files: syntax, unknown keys, and executables that exist."""
    return subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        check=False,
    )
