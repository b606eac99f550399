"""`simhive-agent`: run the agent, check a config file, probe a modem port."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

import click

from agent import config as config_mod
from agent.config import AgentConfig, ConfigError


class RedactSecrets(logging.Filter):
    """Defence in depth: no log line may carry a device token or PIN, whoever logs it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            if any(s in msg for s in self.secrets):
                for s in self.secrets:
                    msg = msg.replace(s, "***")
                record.msg, record.args = msg, None
        return True


def setup_logging(level: str, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter (aiohttp access lines, aiosqlite's line per SQL call) drowns the agent's
    # own debug output; they stay at warning unless something is wrong.
    for noisy in ("aiohttp", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _load(path: str) -> AgentConfig:
    try:
        return config_mod.load(path)
    except ConfigError as exc:
        click.echo(f"simhive-agent: config error: {exc}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    from agent.backends import build_modem
    from agent.journal import JournalError
    from agent.runner import AgentRunner

    cfg = _load(config_path)
    secrets = [d.token for d in cfg.devices] + [d.pin for d in cfg.devices if d.pin]
    setup_logging(log_level or cfg.log_level, secrets)
    try:
        asyncio.run(AgentRunner(cfg, build_modem).run())
    except (JournalError, ConfigError) as exc:
        logging.getLogger("agent").error("%s", exc)
        sys.exit(2)


@main.command("check-config")
@click.argument("config_path", type=click.Path(dir_okay=False))
def check_config(config_path: str) -> None:
    """Validate a config file and print what it describes (tokens are not shown)."""
    cfg = _load(config_path)
    click.echo(f"ok: {config_path}")
    click.echo(f"  server:  {cfg.server}")
    click.echo(f"  journal: {cfg.journal}")
    for d in cfg.devices:
        ports = ", ".join(d.ports)
        style = f", dual SIM {d.dual_sim}" if d.dual_sim != "none" else ""
        click.echo(
            f"  device {d.name!r}: {d.backend} on {ports}{style}, slots {d.slots},"
            f" profile {d.profile or 'auto'}, server {d.server}"
        )


@main.command()
@click.argument("port")
@click.option("--profile", default=None, help="Modem profile (default: detect).")
@click.option("--baudrate", default=115200, show_default=True, type=int)
def probe(port: str, profile: str | None, baudrate: int) -> None:
    """Talk to the modem on PORT and print what it is, as JSON."""
    from agent.modem.probe import probe as probe_port

    setup_logging("warning")
    if baudrate not in config_mod.BAUDRATES:
        raise click.BadParameter(f"one of {config_mod.BAUDRATES}", param_hint="--baudrate")
    if not Path(port).exists():
        click.echo(f"simhive-agent: no such port: {port}", err=True)
        sys.exit(1)
    try:
        result = asyncio.run(probe_port(port, profile=profile, baudrate=baudrate))
    except Exception as exc:  # a CLI answer, not a traceback: the port or modem is the problem
        click.echo(f"simhive-agent: probe of {port} failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(result, indent=2, default=str, ensure_ascii=False))


if __name__ == "__main__":
    main()
