"""`simhive-agent`: run the agent, check a config file, probe a modem port, enroll a device."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from simhive import __version__
from simhive.agent import config as config_mod
from simhive.agent.config import DeviceConfig
from simhive.agent.launch import (
    CONFIG_OPTION,
    LOG_LEVEL_OPTION,
    load_config,
    run_agent,
    setup_logging,
)
from simhive.agent.modem.profiles import PROFILES

# What `simhive-agent run` does not need stays unloaded in its long-lived process: the console
# script starts a plain `run` without this module and click (agent/launch.py), asyncio is
# imported by each command (so `run` can leave out `ssl`), and the subcommands below are
# imported when invoked or listed. Together with simhive/_version.py and agent/sha256.py that
# keeps click, email, urllib.request, http.client, hashlib, ssl and OpenSSL's libraries out of
# the agent: about 11 MiB of memory.
LAZY_COMMANDS = {
    "doctor": "simhive.agent.clitools:doctor",  # doctor and ussd live in agent/clitools.py
    "ussd": "simhive.agent.clitools:ussd",
    "enroll": "simhive.agent.enroll:enroll",  # `simhive-agent enroll URL CODE`
}


class LazyGroup(click.Group):
    """A group whose LAZY_COMMANDS are imported only when one of them is invoked or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        import importlib

        module, name = LAZY_COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="simhive-agent", message="%(prog)s %(version)s")
def main() -> None:
    """simhive host agent: sends and receives SMS over local modems for a simhive server."""


@main.command()
@click.option(
    CONFIG_OPTION, "config_path", required=True, type=click.Path(dir_okay=False),
    help="TOML config file (see docs/agent.md).",
)  # fmt: skip
@click.option(
    LOG_LEVEL_OPTION, type=click.Choice(config_mod.LOG_LEVELS), default=None,
    help="Override the config's log_level.",
)  # fmt: skip
def run(config_path: str, log_level: str | None) -> None:
    """Run every configured device until SIGTERM or SIGINT."""
    run_agent(config_path, log_level)


@main.command("check-config")
@click.argument("config_path", type=click.Path(dir_okay=False))
@click.option("--online", is_flag=True, help="Also check each device token against its server.")
def check_config(config_path: str, online: bool) -> None:
    """Validate a config file and print what it describes (tokens and PINs are not shown).

    Beyond the syntax: every port must exist and open, every token must look like a device
    token, and the journal must be writable. Exit 0 all well, 1 problems found, 2 invalid."""
    import asyncio

    from simhive.agent.clitools import config_problems

    cfg = load_config(config_path)
    report = asyncio.run(config_problems(cfg, online=online))
    click.echo(f"{'ok' if not report.problems else 'problems'}: {config_path}")
    click.echo(f"  server:  {cfg.server}")
    click.echo(f"  journal: {cfg.journal}")
    for d in cfg.devices:
        describe = _describe_gammu if d.backend == "gammu" else _describe_at
        click.echo(f"  device {d.name!r}: {describe(d)}, server {d.server}")
        for warning in _warnings(d):
            click.echo(f"    warning: {warning}")
    for f in report.findings:
        if f.level != "ok":
            click.echo(f"  {'problem' if f.level == 'fail' else 'warning'}: {f.subject}:"
                       f" {f.message}; fix: {f.fix}", err=f.level == "fail")  # fmt: skip
    if report.problems:
        sys.exit(1)


def _describe_at(d: DeviceConfig) -> str:
    style = f", dual SIM {d.dual_sim}" if d.dual_sim != "none" else ""
    # Without a profile the AT backend identifies the modem (AT+CGMI/CGMM) when it starts.
    profile = d.profile or "auto (detected at start)"
    return (
        f"at on {', '.join(d.ports)}{style}, slots {d.slots}, profile {profile},"
        f" {d.baudrate} baud{_extras(d)}"
    )


def _describe_gammu(d: DeviceConfig) -> str:
    # What Gammu will be told, derived as agent/backends.py derives it for `run`: an explicit
    # connection wins, then the gammurc's, else "at" + baudrate.
    from simhive.agent.modem.gammu_backend import gammu_settings

    settings = gammu_settings(
        port=d.ports[0] if d.ports else None,
        connection=d.connection or (None if d.gammurc else f"at{d.baudrate}"),
        gammurc=d.gammurc,
        gammu_section=d.gammu_section,
    )
    text = f"gammu on {settings.device}, connection {settings.connection}"
    if settings.model:
        text += f", model {settings.model}"
    if d.gammurc:
        text += f", from {settings.source}"
    return text + f", slots [0]{_extras(d)}"


def _extras(d: DeviceConfig) -> str:
    numbers = [n for n in d.numbers if n]
    return (", PIN set" if d.pin else "") + (f", own numbers {numbers}" if numbers else "")


def _warnings(d: DeviceConfig) -> list[str]:
    out: list[str] = []
    if d.backend != "gammu":
        return out
    from simhive.agent.modem.gammu_config import INSTALL_HINT, GammuUnavailable, require_gammu

    if d.profile:
        out.append(f"profile {d.profile!r} is ignored: modem profiles belong to the AT backend")
    try:
        require_gammu()
    except GammuUnavailable:
        out.append(f"python-gammu is not installed, so `run` stops; install it: {INSTALL_HINT}")
    return out


@main.command()
@click.argument("port")
@click.option(
    "--profile", default=None, type=click.Choice(sorted(PROFILES)),
    help="Modem profile (default: detected from the modem's identity).",
)  # fmt: skip
@click.option("--baudrate", default=115200, show_default=True, type=int)
def probe(port: str, profile: str | None, baudrate: int) -> None:
    """Talk to the modem on PORT with AT commands, as the `at` backend does, and print what it
    is, as JSON (read only: nothing is sent or deleted)."""
    import asyncio

    from simhive.agent.modem.probe import probe as probe_port
    from simhive.agent.modem.probe import unusable

    setup_logging("warning")
    if baudrate not in config_mod.BAUDRATES:
        raise click.BadParameter(f"one of {config_mod.BAUDRATES}", param_hint="--baudrate")
    if not Path(port).exists():
        click.echo(f"simhive-agent: no such port: {port}", err=True)
        sys.exit(1)
    try:
        result = asyncio.run(probe_port(port, profile=profile, baudrate=baudrate))
    except Exception as exc:  # a CLI answer, not a traceback: the port or modem is the problem
        click.echo(f"simhive-agent: probe of {port} failed: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result, indent=2, default=str, ensure_ascii=False))
    problem = unusable(result)
    if problem:
        # The JSON above still says what could be read; the exit status says it cannot send.
        click.echo(f"simhive-agent: modem on {port} is not usable: {problem}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
