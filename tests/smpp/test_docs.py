"""docs/smpp.md stays true: its options, limits and command statuses are compared with the code."""

from __future__ import annotations

import re
from pathlib import Path

import click

from simhive.server.cli import run
from simhive.server.smpp import session
from simhive.server.smpp.pdu import MAX_PDU_LEN, Status
from simhive.server.smpp.settings import SmppSettings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "smpp.md").read_text()


def _table_after(heading: str) -> list[list[str]]:
    section = DOC.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("|---")
    ][1:]


def test_run_options_and_their_defaults() -> None:
    options = {p.opts[0]: p for p in run.params if isinstance(p, click.Option)}
    documented = {row[0].split()[0].strip("`"): row[1] for row in _table_after("Turning it on")}
    smpp = {name for name in options if name.startswith("--smpp")}
    assert set(documented) == smpp
    for name, default in documented.items():
        real = options[name].default
        if default == "off":
            assert real in (None, False), name
        else:
            assert str(real).removesuffix(".0") == default, name


def test_limits_table_matches_the_settings() -> None:
    s = SmppSettings()
    limits = {row[0]: row[1] for row in _table_after("Limits")}
    assert limits["`submit_sm` per second per account"].startswith(f"`--smpp-rate`, {s.rate:g}")
    assert limits["requests in flight per session (window)"] == str(s.window)
    assert limits["`deliver_sm` unanswered per session"] == str(s.deliver_window)
    assert limits["sessions"] == (
        f"`--smpp-max-sessions`, {s.max_sessions}; per account {s.binds_per_account}"
    )
    assert limits["time from connecting to a bind"].startswith(f"{s.bind_timeout:g} s")
    assert limits["a PDU's body after its header"] == f"{s.read_timeout:g} s"
    assert limits["a bound session without any PDU"] == f"{s.idle_timeout:g} s"
    assert limits["a write the client does not read"].startswith(f"{s.write_timeout:g} s")
    assert limits["waiting for a `deliver_sm_resp`"] == (
        f"{s.response_timeout:g} s, then it is offered again {session.RETRY_SECONDS:g} s later"
    )
    assert limits["largest PDU"] == f"{MAX_PDU_LEN:,} octets"
    assert f"kept for {s.outbox_keep_seconds // 86400} days" in DOC
    assert f"(checked every {s.expiry_check_seconds:g} s)" in DOC
    assert f"forgotten after {s.parts_keep_seconds // 3600}\nhours" in DOC


def test_documented_command_statuses_exist_with_their_values() -> None:
    rows = _table_after("Errors")
    seen = 0
    for row in rows:
        for name, value in re.findall(r"`ESME_(\w+)` \((0x[0-9A-F]{2})\)", row[0]):
            assert Status[name].value == int(value, 16), name
            seen += 1
    assert seen == len(rows) + 1  # one row names two statuses


def test_readme_and_configuration_link_the_page() -> None:
    root = Path(__file__).resolve().parents[2]
    assert "(docs/smpp.md)" in (root / "README.md").read_text()
    configuration = (root / "docs" / "configuration.md").read_text()
    assert "[smpp.md](smpp.md)" in configuration and "--smpp" in configuration
