"""`simhive-agent`: run the agent, check a config file, probe a modem port, enroll a device."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import click

from simhive import __version__
from simhive.agent import config as config_mod
from simhive.agent.config import AgentConfig, ConfigError, DeviceConfig
from simhive.agent.modem.profiles import PROFILES

# What `simhive-agent run` does not need stays unloaded in its long-lived process: asyncio is
# imported by each command (so `run` can leave out `ssl`, see _leave_out_tls_unless_used), and
# the subcommands below are imported when invoked or listed. Together with simhive/_version.py
# and agent/sha256.py that keeps email, urllib.request, http.client, hashlib, ssl and
# OpenSSL's libraries out of the agent: about 10 MiB of memory.
LAZY_COMMANDS = {
    "doctor": "simhive.agent.clitools:doctor",  # doctor and ussd live in agent/clitools.py
    "ussd": "simhive.agent.clitools:ussd",
    "enroll": "simhive.agent.enroll:enroll",  # `simhive-agent enroll URL CODE`
}


class RedactSecrets(logging.Filter):
    """Defence in depth: no log line may carry a device token or PIN, whoever logs it.

    A PIN is all digits, so it is masked only where it stands alone: the same four digits inside
    a phone number, a message id or a timestamp are not the PIN, and masking them there would
    make the log say something untrue ("+49***5678")."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]
        self._patterns = [
            re.compile(rf"(?<![0-9]){re.escape(s)}(?![0-9])" if s.isdigit() else re.escape(s))
            for s in self.secrets
        ]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            if any(s in msg for s in self.secrets):
                for pattern in self._patterns:
                    msg = pattern.sub("***", msg)
                record.msg, record.args = msg, None
        return True


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (aiosqlite's line per SQL call) drowns the agent's
    # own debug output; they stay at warning unless something is wrong.
    for noisy in ("aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _load(path: str) -> AgentConfig:
    try:
        return config_mod.load(path)
    except ConfigError as exc:
        click.echo(f"simhive-agent: config error: {exc}", err=True)
        sys.exit(2)


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
    "--config", "config_path", required=True, type=click.Path(dir_okay=False),
    help="TOML config file (see docs/agent.md).",
)  # fmt: skip
@click.option(
    "--log-level", type=click.Choice(config_mod.LOG_LEVELS), default=None,
    help="Override the config's log_level.",
)  # fmt: skip
def run(config_path: str, log_level: str | None) -> None:
    """Run every configured device until SIGTERM or SIGINT."""
    cfg = _load(config_path)
    _leave_out_tls_unless_used(cfg)
    import asyncio

    from simhive.agent.backends import build_modem
    from simhive.agent.journal import JournalError
    from simhive.agent.runner import AgentRunner, tune_gc

    secrets = [d.token for d in cfg.devices] + [d.pin for d in cfg.devices if d.pin]
    setup_logging(log_level or cfg.log_level, secrets)
    tune_gc()
    try:
        asyncio.run(AgentRunner(cfg, build_modem).run())
    except (JournalError, ConfigError) as exc:
        logging.getLogger("simhive.agent").error("%s", exc)
        sys.exit(2)


def _leave_out_tls_unless_used(cfg: AgentConfig) -> None:
    """Import asyncio without `ssl` when no device's server URL is https.

    `ssl` loads OpenSSL (libssl and libcrypto): about 5 MiB of a process's memory. asyncio
    imports it only if it can (`try: import ssl except ImportError`) and works without it for
    plain TCP; agent/http.py imports it on the first https connection. A `None` entry in
    sys.modules makes that one import fail (the import system's documented way to block a
    module); it is removed again once asyncio is in, so any later `import ssl` works as usual.
    A config with an https server keeps the normal way, and so does a process that has asyncio
    already (tests that run the CLI in process)."""
    if "asyncio" in sys.modules or "ssl" in sys.modules:
        return
    if any(urlsplit(d.server).scheme == "https" for d in cfg.devices):
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import asyncio  # noqa: F401  (its modules bind `ssl = None` now)
    finally:
        del sys.modules["ssl"]


@main.command("check-config")
@click.argument("config_path", type=click.Path(dir_okay=False))
@click.option("--online", is_flag=True, help="Also check each device token against its server.")
def check_config(config_path: str, online: bool) -> None:
    """Validate a config file and print what it describes (tokens and PINs are not shown).

    Beyond the syntax: every port must exist and open, every token must look like a device
    token, and the journal must be writable. Exit 0 all well, 1 problems found, 2 invalid."""
    import asyncio

    from simhive.agent.clitools import config_problems

    cfg = _load(config_path)
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
