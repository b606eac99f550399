"""docs/quickstart.md stays true: the commands it shows exist with the options it uses, its agent
config is valid, and the pacing defaults and limits it quotes are the ones a new device gets."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import click
from click.testing import CliRunner

from simhive.agent.cli import main as agent_cli
from simhive.agent.config import parse
from simhive.server.cli import main as server_cli
from simhive.server.core.agent import AgentSettings

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "quickstart.md").read_text()
CLIS = {"simhive-server": server_cli, "simhive-agent": agent_cli}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.DOTALL)


def _commands() -> list[list[str]]:
    """Every simhive command line in the page's shell blocks, comments dropped."""
    found = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            if argv and Path(argv[0]).name in CLIS:
                found.append([Path(argv[0]).name, *argv[1:]])
    return found


def _resolve(argv: list[str]) -> tuple[click.Command, list[str]]:
    """The (sub)command an argv names, and the arguments left for it."""
    command: click.Command = CLIS[argv[0]]
    rest = argv[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"{argv[0]} has no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, rest


def test_every_command_exists_with_the_options_it_uses() -> None:
    commands = _commands()
    named = {" ".join(argv[:2]) for argv in commands}
    # the walk from nothing to a modem: server, device, agent
    for step in ("simhive-server account", "simhive-server device", "simhive-server run"):
        assert step in named
    assert {"simhive-agent probe", "simhive-agent check-config", "simhive-agent run"} <= named
    for argv in commands:
        command, rest = _resolve(argv)
        options = {o for p in command.params for o in p.opts}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=")[0] in options, f"{' '.join(argv)}: no option {word}"


def test_named_scripts_exist() -> None:
    scripts = set(re.findall(r"\bscripts/[\w-]+", DOC))
    assert {"scripts/run-gateway", "scripts/bootstrap", "scripts/install"} <= scripts
    for script in scripts:
        path = ROOT / script
        assert path.is_file() and path.stat().st_mode & 0o111, script


def test_agent_config_is_valid_and_uses_the_probed_port(tmp_path: Path) -> None:
    [block] = _blocks("toml")
    (tmp_path / "hall.token").write_text("dt_0123456789abcdef0123456789abcdef\n")
    config = parse(tomllib.loads(block), base_dir=tmp_path)
    [device] = config.devices
    probed = next(argv[-1] for argv in _commands() if argv[1] == "probe")
    assert device.ports == (probed,)
    assert (tmp_path / "hall.token").name in block and "(umask 077; cat > hall.token)" in DOC
    # the server URL is the one step 3 starts
    run = next(argv for argv in _commands() if argv[:2] == ["simhive-server", "run"])
    host, port = run[run.index("--host") + 1], run[run.index("--port") + 1]
    assert config.server == f"http://{host}:{port}"


def test_pacing_defaults_are_what_a_new_device_gets(tmp_path: Path) -> None:
    db = str(tmp_path / "db.sqlite3")
    runner = CliRunner()
    made = runner.invoke(
        server_cli,
        ["account", "create", "--db", db, "--email", "a@example.com", "--password", "pw12345678"],
    )
    assert made.exit_code == 0, made.output
    made = runner.invoke(
        server_cli, ["device", "create", "--db", db, "--email", "a@example.com", "--title", "t"]
    )
    assert made.exit_code == 0, made.output
    shown = runner.invoke(server_cli, ["device", "set", "--db", db, "--device-id", "1"])
    settings = json.loads(shown.output)
    quoted = (
        f"at most one SMS per {settings['sim_min_interval']} seconds, "
        f"{settings['sim_per_minute']} a minute, {settings['sim_per_hour']} an hour and "
        f"{settings['sim_per_day']} a day"
    )
    assert quoted in " ".join(DOC.split())
    assert f"## 5. Pacing: one SMS per {settings['sim_min_interval']} s per SIM" in DOC
    assert settings["delaybetweeneachsms"] is None  # "plus a random pause" is opt-in


def test_quoted_server_limits_are_the_defaults() -> None:
    defaults = AgentSettings()
    assert f"after `--lease-seconds` ({defaults.lease_seconds} s)" in DOC
    assert f"`pull_max` ({defaults.pull_max})" in DOC
    lease = next(
        p for p in _resolve(["simhive-server", "run"])[0].params if p.name == "lease_seconds"
    )
    assert lease.default == defaults.lease_seconds
