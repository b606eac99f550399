"""CLI pieces that need no process: log redaction and check-config output."""

from __future__ import annotations

import logging
from pathlib import Path

from click.testing import CliRunner

from simhive.agent.cli import RedactSecrets, main


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
