"""docs/gammu.md stays true: its config examples load, check-config prints what it shows, and
every key its table names exists."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from simhive.agent.cli import main
from simhive.agent.config import _DEVICE_KEYS
from tests.support.procs import ROOT

DOC = (ROOT / "docs" / "gammu.md").read_text()
HEAD = 'server = "http://127.0.0.1:8080"\njournal = "journal.sqlite3"\n'


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC, flags=re.S)


def test_the_examples_pass_check_config_and_print_what_the_page_shows(tmp_path: Path) -> None:
    token = tmp_path / "hall.token"
    token.write_text("dt_docs_example_token\n")
    rc = tmp_path / "gammu-smsdrc"
    rc.write_text("[gammu]\ndevice = /dev/ttyUSB0\nconnection = at19200\n\n[smsd]\nPIN = 1234\n")
    examples = [b for b in blocks("toml") if 'backend = "gammu"' in b]
    assert len(examples) == 2
    cfg = tmp_path / "agent.toml"
    text = HEAD + "\n".join(examples)
    text = text.replace("/etc/simhive/hall.token", str(token)).replace("/etc/gammu-smsdrc", str(rc))
    cfg.write_text(text)
    out = CliRunner().invoke(main, ["check-config", str(cfg)])
    # The example's ports are not on this machine: the summary is printed, then the problems.
    assert out.exit_code == 1 and "does not exist" in out.output, out.output
    printed = [line.replace(str(rc), "/etc/gammu-smsdrc") for line in out.output.splitlines()]
    shown = next(b for b in blocks("text") if "check-config" not in b and "device 'hall" in b)
    for line in shown.strip("\n").splitlines():
        assert line in printed, (line, printed)


def test_every_key_in_the_table_is_a_device_key() -> None:
    table = DOC.split("| Key | Meaning |", 1)[1].split("\n\n", 1)[0]
    keys = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)
    assert len(keys) >= 7
    assert set(keys) <= _DEVICE_KEYS
