"""The gammurc simhive writes and reads, the agent config keys, and a missing python-gammu."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simhive.agent.backends import build_modem
from simhive.agent.config import ConfigError, parse
from simhive.agent.modem.gammu_config import (
    GammuConfigError,
    from_gammurc,
    from_port,
    render,
    require_gammu,
    section_name,
    write_gammurc,
)
from tests.support.procs import console_script

SMSD_RC = """\
# a gammu-smsd setup as people have it
[gammu]
port = /dev/ttyUSB2
connection = at115200
atgen_setcnmi = 2,1,0,2,0
features = HUAWEI_INIT

[gammu1]
device = /dev/ttyUSB6
connection = at
logfile = {log}
logformat = textalldate

[smsd]
service = files
PIN = 1234
"""


def test_port_and_connection_give_a_gammurc_with_direct_reports(tmp_path: Path) -> None:
    written = write_gammurc(from_port("/dev/ttyUSB2", "at115200"), tmp_path)
    text = written.path.read_text()
    assert "[gammu]" in text and "device = /dev/ttyUSB2" in text
    assert "connection = at115200" in text
    assert "atgen_setcnmi = ,,,1" in text  # +CDS straight into the incoming callback
    assert f"logfile = {tmp_path / 'gammu.log'}" in text and "logformat = errors" in text
    assert written.owns_log and written.logfile == tmp_path / "gammu.log"


def test_a_gammu_smsd_gammurc_is_reused(tmp_path: Path) -> None:
    rc = tmp_path / "gammu-smsdrc"
    rc.write_text(SMSD_RC.format(log=tmp_path / "theirs.log"))
    first = from_gammurc(rc)
    assert (first.device, first.connection) == ("/dev/ttyUSB2", "at115200")  # `port` alias
    text = render(first, "/x/gammu.log")
    assert "atgen_setcnmi = 2,1,0,2,0" in text and ",,,1" not in text  # the user's choice wins
    assert "features = HUAWEI_INIT" in text
    assert "service" not in text and "PIN" not in text  # [smsd] is not Gammu's
    second = from_gammurc(rc, 1)
    assert second.device == "/dev/ttyUSB6" and second.user_logfile == str(tmp_path / "theirs.log")
    assert "logformat = textalldate" in render(second, "/x/gammu.log")  # their level is kept
    written = write_gammurc(second, tmp_path / "out")
    assert not written.owns_log and written.logfile == tmp_path / "theirs.log"
    assert from_gammurc(rc, "gammu1", port="/dev/gsm/modem").device == "/dev/gsm/modem"


@pytest.mark.parametrize(
    ("content", "section", "message"),
    [
        ("[gammu]\nconnection = at\n", 0, "no device"),
        ("[gammu]\ndevice = /dev/x\n", 0, "no connection"),
        ("[gammu]\ndevice = /dev/x\nconnection = at\n", 2, r"no \[gammu2\] section"),
        ("device = /dev/x\n", 0, "cannot be parsed"),
    ],
)
def test_bad_gammurc_is_a_clear_error(
    tmp_path: Path, content: str, section: int, message: str
) -> None:
    rc = tmp_path / "rc"
    rc.write_text(content)
    with pytest.raises(GammuConfigError, match=message):
        from_gammurc(rc, section)


def test_no_newline_smuggling_and_no_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GammuConfigError, match="one line"):
        from_port("/dev/ttyUSB0", "at\nlogfile = /etc/passwd")
    with pytest.raises(GammuConfigError, match="cannot read"):
        from_gammurc(tmp_path / "missing")
    assert section_name(None) == "gammu" and section_name(3) == "gammu3"
    with pytest.raises(GammuConfigError):
        section_name(-1)


def _config(**device: Any) -> dict[str, Any]:
    base = {"name": "g", "token": "tok-g", "backend": "gammu"}
    return {"server": "http://127.0.0.1:1", "journal": "j.sqlite3", "device": [base | device]}


def test_agent_config_keys(tmp_path: Path) -> None:
    by_port = parse(_config(port="/dev/ttyUSB2", connection="at19200")).devices[0]
    assert (by_port.backend, by_port.ports, by_port.connection) == (
        "gammu",
        ("/dev/ttyUSB2",),
        "at19200",
    )
    (tmp_path / "rc").write_text(SMSD_RC.format(log="/tmp/x.log"))
    by_rc = parse(_config(gammurc="rc", gammu_section=1), base_dir=tmp_path).devices[0]
    assert by_rc.gammurc == str(tmp_path / "rc") and by_rc.gammu_section == 1
    assert by_rc.ports == ("/dev/ttyUSB6",)  # the runtime names the device by its port


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ({"port": "/dev/x", "dual_sim": "cdsds"}, "drives one SIM"),
        ({"ports": ["/dev/x", "/dev/y"]}, "drives one SIM"),
        ({"port": "/dev/x", "gammu_section": 1}, "only together with gammurc"),
        ({"port": "/dev/x", "connection": "at 115200"}, "one word"),
        ({"gammurc": "nope"}, "cannot read"),
        ({"backend": "at", "port": "/dev/x", "connection": "at"}, 'only with backend = "gammu"'),
        ({}, "port: required"),
    ],
)
def test_agent_config_errors(device: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(_config(**device))


def test_missing_python_gammu_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gammu", None)  # import gammu -> ImportError
    with pytest.raises(RuntimeError, match=r"pip install 'python-gammu>=3.2'"):
        require_gammu()
    cfg = parse(_config(port="/dev/ttyUSB2")).devices[0]
    with pytest.raises(ConfigError, match=r"pip install 'python-gammu>=3.2'"):
        build_modem(cfg)


def test_agent_process_exits_with_the_install_hint(tmp_path: Path) -> None:
    # A `gammu` package that fails to import shadows the installed one, as if it were missing.
    fake = tmp_path / "shadow" / "gammu"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ImportError('simulated: python-gammu not installed')\n"
    )
    config = tmp_path / "agent.toml"
    config.write_text(
        'server = "http://127.0.0.1:9"\n'
        f'journal = "{tmp_path / "journal.sqlite3"}"\n'
        '[[device]]\nname = "g"\ntoken = "tok-g"\nbackend = "gammu"\nport = "/dev/ttyUSB2"\n'
    )
    env = {"PYTHONPATH": f"{fake.parent}:{Path(__file__).resolve().parents[2]}", "PATH": ""}
    done = subprocess.run(
        [console_script("simhive-agent"), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode != 0
    assert "pip install 'python-gammu>=3.2'" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_build_modem_gives_a_gammu_modem(tmp_path: Path) -> None:
    cfg = parse(_config(port=str(tmp_path / "tty"), baudrate=19200)).devices[0]
    modem = build_modem(cfg)
    assert type(modem).__name__ == "GammuModem"
    assert "connection = at19200" in modem.rc.path.read_text()  # type: ignore[attr-defined]
