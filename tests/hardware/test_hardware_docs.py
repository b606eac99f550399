"""docs/hardware.md's install steps name the files, paths and commands the shipped units and rules
really use, so a step copied from the page finds what it expects."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from simhive.server.cli import main as server_cli

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "hardware.md").read_text()
AGENT_MD = (ROOT / "docs" / "agent.md").read_text()
GAMMU_MD = (ROOT / "docs" / "gammu.md").read_text()
INSTALL = (ROOT / "scripts" / "install").read_text()


def _service(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(ROOT / "hardware" / "systemd" / f"{name}.service")
    return parser["Service"]


def test_named_files_exist() -> None:
    for path in re.findall(r"`(hardware/[\w./-]+)`", DOC):
        assert (ROOT / path).exists(), path
    assert "cp hardware/udev/77-simhive-modems.rules /etc/udev/rules.d/" in DOC


def test_server_steps_use_the_units_data_dir_and_address() -> None:
    server = _service("simhive-server")
    data = server["Environment"].removeprefix("SIMHIVE_DATA=")
    assert data == "/var/lib/" + server["StateDirectory"]
    assert f"SIMHIVE_DATA={data}" in DOC and f"database in `{data}`" in DOC
    argv = shlex.split(server["ExecStart"])
    host, port = argv[argv.index("--host") + 1], argv[argv.index("--port") + 1]
    assert f"listens on {host}:{port}" in DOC
    assert server["User"] == "simhive" and "creates the system user `simhive`" in DOC
    assert "\nuser=simhive\n" in INSTALL and "useradd --system" in INSTALL
    for command in ("account create", "device create"):
        assert f"simhive-server {command} --email" in DOC
        args = command.split() + ["--help"]
        assert CliRunner().invoke(server_cli, args).exit_code == 0


def test_agent_steps_use_the_units_config_and_state_dir() -> None:
    agent = _service("simhive-agent")
    config = shlex.split(agent["ExecStart"])[-1]
    assert f"check-config {config}" in DOC and f"reads `{config}`" in DOC
    state = "/var/lib/" + agent["StateDirectory"]
    assert f"`{state}`" in DOC
    # the journal in docs/agent.md's example is inside the only directory the unit may write
    journal = re.search(r'^journal = "([^"]+)"', AGENT_MD, flags=re.M)
    assert journal is not None and journal.group(1).startswith(state + "/")
    assert agent["SupplementaryGroups"] == "dialout" and "in `dialout`" in DOC
    assert 'usermod --append --groups dialout "$user"' in INSTALL


def test_every_page_names_the_venv_the_units_run_from() -> None:
    """hardware.md, gammu.md, the units and scripts/install agree on one venv path."""
    venvs = {
        str(Path(shlex.split(_service(name)["ExecStart"])[0]).parents[1])
        for name in ("simhive-server", "simhive-agent")
    }
    assert venvs == {"/opt/simhive/venv"}
    assert "\nprefix=/opt/simhive\n" in INSTALL and 'venv="$prefix/venv"' in INSTALL
    for page in (DOC, GAMMU_MD):
        named = set(re.findall(r"/opt/simhive/[\w.]*venv", page))
        assert named == venvs, named
