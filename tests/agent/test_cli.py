"""CLI pieces that need no process: log redaction and check-config output."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from click.testing import CliRunner

from simhive.agent.cli import main
from simhive.agent.launch import RedactSecrets, plain_run


def test_log_filter_masks_tokens_whoever_logs_them() -> None:
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "auth %s failed for %s",
        ("Bearer dt_secret_123", "dev"),
        None,
    )
    assert RedactSecrets(["dt_secret_123"]).filter(record)
    assert record.getMessage() == "auth Bearer *** failed for dev"
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "nothing here", (), None)
    RedactSecrets(["dt_secret_123"]).filter(plain)
    assert plain.getMessage() == "nothing here"


def test_check_config_summarises_without_tokens(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text(
        'server = "http://127.0.0.1:8080"\njournal = "j.db"\n\n[[device]]\n'
        'name = "hall"\ntoken = "dt_secret_123"\nport = "/dev/ttyUSB0"\n'
        'dual_sim = "cdsds"\n'
    )
    out = CliRunner().invoke(main, ["check-config", str(cfg)])
    assert "device 'hall': at on /dev/ttyUSB0, dual SIM cdsds, slots [0, 1]" in out.output
    assert "dt_secret_123" not in out.output
    # Made-up port and token: summarised, then reported as problems (exit 1, not 2: valid TOML).
    assert out.exit_code == 1
    assert "problem: /dev/ttyUSB0: /dev/ttyUSB0 does not exist" in out.output
    assert "the token has 13 characters" in out.output


def test_check_config_error_exit_code(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["check-config", str(tmp_path / "missing.toml")])
    assert out.exit_code == 2


def test_the_launcher_reads_a_plain_run_as_click_does_and_leaves_the_rest_to_click(
    tmp_path: Path,
) -> None:
    # agent/launch.py starts `run` without click; what it accepts must mean what click makes
    # of it, and whatever click would refuse or answer must reach click.
    cfg, unreadable = tmp_path / "a.toml", tmp_path / "secret.toml"
    cfg.write_text("")
    unreadable.write_text("")
    unreadable.chmod(0)
    run = main.commands["run"]
    plain = [
        ["run", "--config", str(cfg)],
        ["run", f"--config={cfg}", "--log-level", "debug"],
        ["run", "--log-level=warning", "--config", "missing.toml"],  # click does not look
    ]
    for args in plain:
        got = plain_run(args)
        assert got is not None, args
        params = run.make_context("run", args[1:]).params
        assert got == (params["config_path"], params["log_level"]), args
    to_click = [
        [], ["--version"], ["run"], ["run", "--help"], ["check-config", str(cfg)],
        ["run", "--config"], ["run", "--config="], ["run", "--config", "-x"],
        ["run", "--config", str(cfg), "--config", str(cfg)], ["run", "--config", str(tmp_path)],
        ["run", "--config", str(cfg), "--log-level", "LOUD"], ["run", "-c", str(cfg)],
        ["run", "--config", str(cfg), "extra"], ["run", "--conf", str(cfg)],
    ]  # fmt: skip
    if os.geteuid() != 0:  # root reads any file
        to_click.append(["run", "--config", str(unreadable)])
    for args in to_click:
        assert plain_run(args) is None, args
