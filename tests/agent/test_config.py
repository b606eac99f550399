"""Config validation: the documented example loads, and every mistake is a clear ConfigError."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from simhive.agent.config import ConfigError, load, parse

DOCS = Path(__file__).resolve().parents[2] / "docs" / "agent.md"


def docs_example() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/agent.md has one full config example"
    return str(blocks[0])


def base(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "server": "http://127.0.0.1:8080",
        "journal": "/tmp/j.db",
        "device": [{"name": "a", "token": "tok-a", "port": "/dev/ttyUSB0"}],
    }
    d.update(over)
    return d


def dev(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": "a", "token": "tok-a", "port": "/dev/ttyUSB0"}
    d.update(over)
    return d


def test_documented_example_loads(tmp_path: Path) -> None:
    text = docs_example().replace("/etc/simhive/hall.token", str(tmp_path / "hall.token"))
    (tmp_path / "hall.token").write_text("dt_hall_secret\n")
    (tmp_path / "agent.toml").write_text(text)
    cfg = load(tmp_path / "agent.toml")
    hall, office = cfg.devices
    assert hall.token == "dt_hall_secret" and hall.single_standby and hall.slots == [0, 1]
    assert hall.number_for(0) == "+4915752982212" and hall.number_for(1) is None
    assert hall.pin == "1234" and hall.profile == "sim800c-ds"
    assert office.ports == ("/dev/ttyUSB2", "/dev/ttyUSB6") and not office.single_standby
    assert office.slots == [0, 1] and office.server == "http://127.0.0.1:8080"
    assert cfg.max_attempts == 3 and cfg.report_window_seconds == 600
    assert cfg.delivery_report_timeout_seconds == 25 * 3600
    assert "dt_hall_secret" not in repr(cfg) and "1234" not in repr(hall)


def test_defaults_and_relative_journal(tmp_path: Path) -> None:
    cfg = parse(base(journal="state/j.db"), base_dir=tmp_path)
    assert cfg.journal == tmp_path / "state" / "j.db"
    d = cfg.devices[0]
    assert (d.backend, d.dual_sim, d.baudrate, d.slots, d.profile) == (
        "at",
        "none",
        115200,
        [0],
        None,
    )
    assert cfg.log_level == "info"
    assert cfg.delivery_report_timeout_seconds == 25 * 3600  # 24 h validity + 1 h
    assert parse(base(delivery_report_timeout_seconds=0)).delivery_report_timeout_seconds == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (base(server="ftp://example.org"), "server: an http(s) URL"),
        (base(server="http://u:p@host"), "no query, fragment or credentials"),
        ({"journal": "/tmp/j", "device": []}, "server: required"),
        (base(device=[]), "at least one [[device]]"),
        (base(device={"name": "x"}), "array of tables"),
        (base(delaybetweeneachsms=5), "delaybetweeneachsms: unknown key"),
        (base(log_level="loud"), "log_level: must be one of"),
        (base(max_attempts=0), "max_attempts: must be between 1"),
        (base(max_attempts=2.5), "max_attempts: must be an integer"),
        (base(delivery_report_timeout_seconds=-1), "delivery_report_timeout_seconds: must be"),
        (base(delivery_report_timeout_seconds="1d"), "delivery_report_timeout_seconds: must be"),
        (base(device=[dev(token="")]), "device[0].token: must not be empty"),
        (base(device=[dev(token="has space")]), "without spaces"),
        (base(device=[{"name": "a", "port": "/dev/x"}]), "device[0].token: required"),
        (base(device=[dev(token_file="/nonexistent/t")]), "give token or token_file"),
        (base(device=[dev(backend="kannel")]), "device[0].backend: must be one of at"),
        (base(device=[dev(ports=["/dev/a"])]), "give port (one modem) or ports"),
        (base(device=[{"name": "a", "token": "t"}]), "device[0].port: required"),
        (base(device=[{"name": "a", "token": "t", "ports": ["/a", "/b", "/c"]}]), "one or two"),
        (base(device=[{"name": "a", "token": "t", "ports": ["/a", "/a"]}]), "used twice"),
        (
            base(device=[{"name": "a", "token": "t", "ports": ["/a", "/b"], "dual_sim": "cdsds"}]),
            "only with a single port",
        ),
        (base(device=[dev(dual_sim="hl-ds")]), "dual_sim: must be one of"),
        (base(device=[dev(profile="nokia")]), "unknown profile 'nokia'"),
        (base(device=[dev(baudrate=12345)]), "baudrate: one of"),
        (base(device=[dev(pin=1234)]), "write the PIN as a string"),
        (base(device=[dev(pin="12a4")]), "4 to 8 digits"),
        (base(device=[dev(numbers=["+491", "+492"])]), "2 given for 1 SIM slot"),
        (base(device=[dev(dual_sim="cdsds", numbers=["0151 234"])]), "E.164"),
        (base(device=[dev(), dev(port="/dev/ttyUSB1", token="t2")]), "name: 'a' is used twice"),
        (base(device=[dev(), dev(name="b")]), "port: '/dev/ttyUSB0' is used twice"),
        (base(device=[dev(), dev(name="b", port="/dev/ttyUSB1")]), "token: used twice"),
        (base(device=[dev(colour="red")]), "device[0].colour: unknown key"),
    ],
)
def test_invalid_configs_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(data)
    assert message in str(info.value)
    assert "tok-a" not in str(info.value)  # a duplicate token is reported without showing it


def test_file_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("server = \n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(binary)


def test_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("  secret-token \n")
    cfg = parse(
        base(device=[{"name": "a", "token_file": "t", "port": "/dev/x"}]), base_dir=tmp_path
    )
    assert cfg.devices[0].token == "secret-token"


def test_example_is_valid_toml() -> None:
    assert "device" in tomllib.loads(docs_example())


def test_request_timeout_is_a_setting_with_bounds() -> None:
    assert parse(base()).request_timeout_seconds == 30.0
    assert parse(base(request_timeout_seconds=8)).request_timeout_seconds == 8.0
    with pytest.raises(ConfigError, match="request_timeout_seconds"):
        parse(base(request_timeout_seconds=1))
