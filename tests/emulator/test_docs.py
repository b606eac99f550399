"""docs/emulator.md is kept honest: every command, fault, profile, CLI option and route it must
describe is checked against the code's own tables."""

from __future__ import annotations

from pathlib import Path

from simhive.hardware.emulator import commands_general, commands_sms  # noqa: F401  (fills COMMANDS)
from simhive.hardware.emulator.cli import run
from simhive.hardware.emulator.control import make_app
from simhive.hardware.emulator.emulator import Emulator, EmulatorConfig
from simhive.hardware.emulator.engine import COMMANDS
from simhive.hardware.emulator.faults import FAULT_NAMES
from simhive.hardware.emulator.profiles import PROFILES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "emulator.md").read_text()


def test_every_extended_command_is_documented() -> None:
    missing = [n for n in COMMANDS if n[0] in "+^" and f"AT{n}" not in DOC and f"`{n}" not in DOC]
    assert missing == []


def test_every_fault_and_profile_is_documented() -> None:
    assert [f for f in FAULT_NAMES if f"| `{f}` |" not in DOC] == []
    assert [p for p in PROFILES if f"| `{p}` |" not in DOC] == []


def test_every_cli_option_is_documented() -> None:
    options = [o for p in run.params for o in p.opts if o.startswith("--")]
    assert len(options) >= 10
    assert [o for o in options if f"`{o}" not in DOC] == []


def test_every_control_route_is_documented(tmp_path: Path) -> None:
    app = make_app(Emulator(EmulatorConfig(state_dir=tmp_path)))
    routes = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    assert len(routes) >= 12
    table = DOC.split("## The control API", 1)[1]
    assert [f"{m} {p}" for m, p in sorted(routes) if f"{m} {p}" not in table] == []
