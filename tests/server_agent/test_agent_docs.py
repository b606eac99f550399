"""docs/agent.md and docs/agent-protocol.md stay true to the code: every config key is documented,
the documented defaults and choices are the code's, the CLI has the options the page names, and
the protocol page lists exactly the routes, event types, error codes and limits the server has."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

from click.testing import CliRunner

from simhive.agent import config
from simhive.agent.cli import main as agent_cli
from simhive.agent.modem.profiles import PROFILES
from simhive.server.api import agent as api
from simhive.server.core.pools import SimOffer
from simhive.server.core.status import FAILURE_CODES

DOCS = Path(__file__).resolve().parents[2] / "docs"
AGENT_MD = (DOCS / "agent.md").read_text()
PROTOCOL_MD = (DOCS / "agent-protocol.md").read_text()
GAMMU_KEYS = {"gammurc", "gammu_section", "connection"}


def _example() -> str:
    blocks: list[str] = re.findall(r"```toml\n(.*?)```", AGENT_MD, flags=re.S)
    [block] = blocks
    return block


def test_every_config_key_is_documented() -> None:
    named = set(re.findall(r"`([a-z_]+)`", AGENT_MD)) | set(
        re.findall(r"^([a-z_]+) =", _example(), flags=re.M)
    )
    missing = (config._TOP_KEYS | config._DEVICE_KEYS) - GAMMU_KEYS - named - {"device"}
    assert not missing, f"config keys docs/agent.md does not name: {sorted(missing)}"
    gammu_md = (DOCS / "gammu.md").read_text()
    assert all(f"`{key}`" in gammu_md for key in GAMMU_KEYS)


def test_documented_defaults_are_the_codes() -> None:
    tuning = _example().split("# Optional tuning (defaults shown).", 1)[1].split("\n\n", 1)[0]
    documented = dict(re.findall(r"^([a-z_]+) = ([0-9.]+)", tuning, flags=re.M))
    fields = {f.name: f.default for f in dataclasses.fields(config.AgentConfig)}
    optional = {k for k, v in fields.items() if isinstance(v, int | float)}
    assert set(documented) == optional, "the tuning block lists every optional number"
    minimal = config.parse({"server": "http://127.0.0.1:8080", "journal": "/tmp/j.sqlite3",
                            "device": [{"name": "a", "token": "t", "port": "/dev/x"}]})  # fmt: skip
    for key, text in documented.items():
        assert float(text) == fields[key] == getattr(minimal, key), key


def test_documented_choices_are_the_codes() -> None:
    def choices(key: str) -> list[str]:
        line = next(ln for ln in _example().splitlines() if ln.startswith(f"{key} ="))
        return [c.strip() for c in line.split("#", 1)[1].split("|")]

    assert [c.split()[0] for c in choices("profile")] == list(PROFILES)
    assert [c.split()[0] for c in choices("dual_sim")] == list(config.DUAL_SIM_STYLES)
    assert choices("log_level") == list(config.LOG_LEVELS)


def test_documented_cli_options_exist() -> None:
    for command, options in {"run": ["--config", "--log-level"],
                             "probe": ["--profile", "--baudrate"],
                             "enroll": ["--port", "--config", "--journal", "--dual-sim",
                                        "--profile"]}.items():  # fmt: skip
        result = CliRunner().invoke(agent_cli, [command, "--help"])
        assert result.exit_code == 0
        for option in options:
            assert option in result.output and option in AGENT_MD, (command, option)
    assert "check-config /etc/simhive/agent.toml" in AGENT_MD  # an argument, not --config


def test_protocol_routes_are_the_servers() -> None:
    documented = re.findall(r"^## `POST /agent/v1/([a-z]+)`", PROTOCOL_MD, flags=re.M)
    assert documented == [*api.ROUTES, "enroll"]  # enroll: server/api/enroll.py, no device token


def _section(heading: str) -> str:
    return PROTOCOL_MD.split(heading, 1)[1].split("\n## ", 1)[0]


def test_protocol_event_types_and_failure_statuses() -> None:
    report = _section("## `POST /agent/v1/report`")
    table = re.findall(r"^\| `([a-z_]+)` \|", report, flags=re.M)
    assert table == list(api.EVENT_TYPES)
    failed = next(ln for ln in PROTOCOL_MD.splitlines() if ln.startswith("| `failed`"))
    listed = {int(n) for n in re.search(r"\(([0-9, ]+)\)", failed).group(1).split(",")}  # type: ignore[union-attr]
    assert listed == {int(c) for c in FAILURE_CODES}


def test_protocol_pull_sims_keys_are_the_ones_the_server_reads() -> None:
    sims = _section("### Per-SIM pulls: `sims`")
    documented = re.findall(r"^\| `([a-z_]+)` \|", sims, flags=re.M)
    source = inspect.getsource(api._offers)
    read = re.findall(r'_(?:opt|int_in)\(s, "([a-z_]+)"', source)
    offer = sorted(f.name for f in dataclasses.fields(SimOffer))
    assert sorted(documented) == sorted(read) == offer


def test_protocol_error_codes_and_limits() -> None:
    source = Path(api.__file__).read_text()
    used = set(re.findall(r'error\((\d+), "([a-z_]+)"', source))
    conventions = PROTOCOL_MD.split("## Conventions", 1)[1].split("##", 1)[0]
    documented = {
        (status, code) for code, status in re.findall(r"`([a-z_]+)` \((\d+)", conventions)
    }
    assert used == documented
    limits = PROTOCOL_MD.split("## Limits", 1)[1]
    assert api.MAX_BODY == 1024 * 1024 and "| request body | 1 MiB |" in limits
    assert f"| {api.MAX_ITEMS} |" in limits
    assert f"at most {api.MAX_HOLDING} lease ids" in limits
