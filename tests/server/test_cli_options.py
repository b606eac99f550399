"""Every command-line tool answers --version and -h, on every (sub)command."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from importlib.metadata import version

import click
import pytest
from click.testing import CliRunner

import simhive
from simhive.agent.cli import main as agent_main
from simhive.hardware.emulator.cli import main as emulator_main
from simhive.server.cli import main as server_main
from tests.support.procs import ROOT, console_script

TOOLS = {"simhive-server": server_main, "simhive-agent": agent_main,
         "simhive-emulator": emulator_main}  # fmt: skip


def commands(group: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(group, click.Group):
        for name, command in group.commands.items():
            yield from commands(command, (*path, name))


@pytest.mark.parametrize("tool", TOOLS)
def test_version_is_the_installed_one(tool: str) -> None:
    # A real process: what an admin types.
    result = subprocess.run([console_script(tool), "--version"], capture_output=True, text=True,
                            timeout=30)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{tool} {version('simhive')}\n"
    assert simhive.__version__ == version("simhive")


@pytest.mark.parametrize("tool", TOOLS)
def test_dash_h_is_help_on_every_command(tool: str) -> None:
    runner = CliRunner()
    paths = list(commands(TOOLS[tool]))
    assert len(paths) > 1
    for path in paths:
        result = runner.invoke(TOOLS[tool], [*path, "-h"], prog_name=tool)
        assert result.exit_code == 0, (path, result.output)
        assert result.output.startswith(f"Usage: {' '.join((tool, *path))} "), result.output


def test_the_run_options_documented_with_defaults_have_those_defaults() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    [row] = [line for line in doc.splitlines() if line.startswith("| `run [")]
    documented = dict(re.findall(r"\[(--[a-z-]+) (\d+(?:\.\d+)?)\]", row))
    run = server_main.commands["run"]
    real = {f"--{p.name.replace('_', '-')}": p.default for p in run.params
            if isinstance(p, click.Option) and isinstance(p.default, int | float)
            and not isinstance(p.default, bool)}  # fmt: skip
    assert {"--lease-seconds", "--long-poll-seconds", "--port"} <= set(documented)
    assert {k: float(v) for k, v in documented.items()} == {k: float(v) for k, v in real.items()}
