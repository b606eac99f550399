"""The shipped systemd units and udev rules stay consistent with the package they deploy."""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "hardware" / "systemd").glob("*.service"))
RULES = sorted((ROOT / "hardware" / "udev").glob("*.rules"))


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(path)
    return parser


def test_units_start_console_scripts_that_the_package_declares() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert len(UNITS) == 2
    for path in UNITS:
        unit = _unit(path)
        argv = shlex.split(unit["Service"]["ExecStart"])
        assert Path(argv[0]).name in scripts, path.name
        assert argv[1] == "run", path.name
        # never as root: serial access comes from the dialout group
        assert unit["Service"]["User"] == "simhive"


def test_agent_unit_gets_serial_access_and_a_graceful_stop() -> None:
    unit = _unit(ROOT / "hardware" / "systemd" / "simhive-agent.service")["Service"]
    assert unit["SupplementaryGroups"] == "dialout"
    assert unit["KillSignal"] == "SIGTERM"
    assert int(unit["TimeoutStopSec"]) >= 60  # a +CMGS in flight may take up to 60 s


_KEY = re.compile(r'^(ACTION|SUBSYSTEMS?|ATTRS\{\w+\}|ENV\{\w+\}|SYMLINK|TAG)(==|\+=|=)"[^"]*"$')


def test_udev_rules_are_well_formed_and_ignore_modemmanager() -> None:
    assert RULES and RULES[0].name.startswith("77-")  # must sort before 80-mm-candidate.rules
    lines = RULES[0].read_text().splitlines()
    rules = [ln for ln in lines if ln.strip() and not ln.startswith("#")]
    assert rules
    for line in rules:
        for part in (p.strip() for p in line.split(", ")):
            assert _KEY.match(part), f"unexpected udev clause {part!r} in {line!r}"
    assert sum('ENV{ID_MM_DEVICE_IGNORE}="1"' in ln for ln in rules) >= 3
