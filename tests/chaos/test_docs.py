"""docs/reliability.md stays true: the command and every option it names exist, its kind table
matches the suite's, every test it cites exists, and its figures are the runner's table."""

from __future__ import annotations

import os
import re

from tests.chaos.kinds import KINDS
from tests.chaos.run import parser, render
from tests.support.procs import ROOT

DOC = (ROOT / "docs" / "reliability.md").read_text()


def test_readme_links_the_page() -> None:
    assert "[docs/reliability.md](docs/reliability.md)" in (ROOT / "README.md").read_text()


def test_the_command_exists_and_runs_the_suite() -> None:
    script = ROOT / "scripts" / "run-chaos"
    assert os.access(script, os.X_OK)
    assert "-m tests.chaos" in script.read_text()
    assert "scripts/run-chaos" in DOC


def test_documented_options_are_the_cli_options() -> None:
    documented = set(re.findall(r"`(--[a-z-]+)", DOC))
    options = {o for a in parser()._actions for o in a.option_strings if o.startswith("--")}
    options.discard("--help")
    assert documented == options


def test_every_kind_is_documented_with_its_default_trials() -> None:
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (\d+) \|", DOC, re.M))
    assert rows == {name: str(k.default_trials) for name, k in KINDS.items()}


def test_every_cited_test_exists() -> None:
    cited = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", DOC)
    assert len(cited) >= 20
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.M)
    ]
    assert missing == []


def test_figures_table_has_the_runners_columns_and_every_kind() -> None:
    figures = DOC.split("## Latest figures", 1)[1].split("\n## ", 1)[0]
    assert render([]) in figures.splitlines()  # the header line, as the run prints it
    for name in [*KINDS, "total"]:
        assert re.search(rf"^{name}\s+\d+\s+\d+", figures, re.M), name
