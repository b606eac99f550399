"""The `simhive-agent` console script: `run` starts the agent without loading click.

`simhive-agent run` is the one long-lived process, and whatever it imports it holds for as long as
it runs. click, with gettext, uuid and platform that it imports, costs that process about 0.8 MiB
once everything else is loaded (the agent's memory on 2026-12-07 in docs/benchmarks.md), only to
read two options. So a well-formed `run --config PATH [--log-level LEVEL]` (either order,
`--opt=value` too) is read here, and the agent started as agent/cli.py's `run` command starts it
(the command calls `run_agent` below). Anything else (another command, `--help`, a missing,
repeated or unknown option, a log level click would refuse, a directory as the config) goes to the
click group in agent/cli.py untouched, which parses it, answers or refuses it as it always did.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from urllib.parse import urlsplit

from simhive.agent import config as config_mod
from simhive.agent.config import AgentConfig, ConfigError

# The `run` command's options, declared here for both parsers (agent/cli.py uses them too).
CONFIG_OPTION = "--config"
LOG_LEVEL_OPTION = "--log-level"


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


def load_config(path: str) -> AgentConfig:
    """The config at `path`; a config error is said on stderr and ends the process (status 2)."""
    try:
        return config_mod.load(path)
    except ConfigError as exc:
        print(f"simhive-agent: config error: {exc}", file=sys.stderr)
        sys.exit(2)


def run_agent(config_path: str, log_level: str | None) -> None:
    """Run every configured device until SIGTERM or SIGINT."""
    cfg = load_config(config_path)
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


def plain_run(args: list[str]) -> tuple[str, str | None] | None:
    """(config path, log level) when `args` is a well-formed `run` that click would accept as
    it stands; None for anything else, which click is to parse."""
    if not args or args[0] != "run":
        return None
    values: dict[str, str] = {}
    rest = iter(args[1:])
    for arg in rest:
        option, eq, value = arg.partition("=")
        if option not in (CONFIG_OPTION, LOG_LEVEL_OPTION) or option in values:
            return None
        if not eq:
            value = next(rest, "")
        if not value or value.startswith("-"):
            return None
        values[option] = value
    config_path, log_level = values.get(CONFIG_OPTION), values.get(LOG_LEVEL_OPTION)
    if config_path is None or os.path.isdir(config_path):
        return None
    if os.path.exists(config_path) and not os.access(config_path, os.R_OK):
        return None  # click refuses it as "not readable"
    if log_level is not None and log_level not in config_mod.LOG_LEVELS:
        return None
    return config_path, log_level


def main() -> None:
    run = plain_run(sys.argv[1:])
    if run is None:
        from simhive.agent.cli import main as click_main

        click_main()
    else:
        run_agent(*run)
