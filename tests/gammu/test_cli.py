"""simhive-agent's CLI says what is true: `check-config` per backend (a gammu device has no AT
profile), `probe` names the profiles it knows, and log redaction masks a PIN, not every number
that contains its digits."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from simhive.agent.cli import main
from simhive.agent.launch import RedactSecrets

HEAD = 'server = "http://127.0.0.1:8080"\njournal = "j.db"\n'


def check(tmp_path: Path, devices: str) -> str:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(HEAD + devices)
    out = CliRunner().invoke(main, ["check-config", str(cfg)])
    # The ports and tokens here are made up: check-config prints the summary, then reports
    # them as problems (the port does not exist, the token is not a device token's shape).
    assert out.exit_code == 1 and "problem: " in out.output, out.output
    return out.output


def device_line(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"  device {name!r}:"))


def test_a_port_device_shows_the_connection_gammu_gets_not_an_at_profile(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        '[[device]]\nname = "g"\ntoken = "tok_gammu_1"\nbackend = "gammu"\n'
        'port = "/dev/ttyUSB3"\nbaudrate = 19200\npin = "1234"\n'
        '[[device]]\nname = "h"\ntoken = "tok_gammu_2"\nbackend = "gammu"\n'
        'port = "/dev/ttyUSB4"\nconnection = "bluerfat"\n',
    )
    # Without a connection the agent tells Gammu "at" + baudrate (agent/backends.py).
    assert device_line(out, "g") == (
        "  device 'g': gammu on /dev/ttyUSB3, connection at19200, slots [0], PIN set,"
        " server http://127.0.0.1:8080"
    )
    assert "connection bluerfat" in device_line(out, "h")
    assert "profile" not in out and "tok_gammu" not in out and "1234" not in out


def test_a_gammurc_device_shows_the_section_device_connection_and_model(tmp_path: Path) -> None:
    rc = tmp_path / "gammu-smsdrc"
    rc.write_text(
        "[gammu]\ndevice = /dev/ttyACM0\nconnection = at19200\n\n"
        "[gammu1]\ndevice = /tmp/phone\nconnection = none\nmodel = dummy\n"
    )
    out = check(
        tmp_path,
        '[[device]]\nname = "a"\ntoken = "t1"\nbackend = "gammu"\ngammurc = "gammu-smsdrc"\n'
        '[[device]]\nname = "b"\ntoken = "t2"\nbackend = "gammu"\ngammurc = "gammu-smsdrc"\n'
        'gammu_section = 1\n'
        '[[device]]\nname = "c"\ntoken = "t3"\nbackend = "gammu"\ngammurc = "gammu-smsdrc"\n'
        'port = "/dev/ttyUSB7"\nconnection = "at115200"\n',
    )  # fmt: skip
    # The gammurc's own connection is used (not the default baudrate).
    assert device_line(out, "a").startswith(
        f"  device 'a': gammu on /dev/ttyACM0, connection at19200, from {rc} [gammu], slots [0]"
    )
    assert device_line(out, "b").startswith(
        f"  device 'b': gammu on /tmp/phone, connection none, model dummy, from {rc} [gammu1]"
    )
    # port and connection in the agent's config override the gammurc's.
    assert device_line(out, "c").startswith(
        f"  device 'c': gammu on /dev/ttyUSB7, connection at115200, from {rc} [gammu]"
    )


def test_an_at_profile_on_a_gammu_device_is_reported_as_ignored(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        '[[device]]\nname = "g"\ntoken = "t1"\nbackend = "gammu"\nport = "/dev/ttyUSB3"\n'
        'profile = "sim800c"\n',
    )
    assert "warning: profile 'sim800c' is ignored" in out
    assert "profile sim800c" not in device_line(out, "g")


def test_missing_python_gammu_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gammu", None)  # makes `import gammu` raise ImportError
    out = check(
        tmp_path, '[[device]]\nname = "g"\ntoken = "t1"\nbackend = "gammu"\nport = "/dev/x"\n'
    )
    assert "warning: python-gammu is not installed" in out
    assert "pip install 'python-gammu>=3.2'" in out


def test_an_at_device_says_its_profile_is_detected_and_its_speed(tmp_path: Path) -> None:
    out = check(
        tmp_path,
        '[[device]]\nname = "a"\ntoken = "t1"\nport = "/dev/ttyUSB0"\n'
        '[[device]]\nname = "b"\ntoken = "t2"\nport = "/dev/ttyUSB1"\nprofile = "quectel-ec25"\n'
        'baudrate = 921600\nnumbers = ["+4915112345678"]\n',
    )
    assert "profile auto (detected at start), 115200 baud" in device_line(out, "a")
    assert "profile quectel-ec25, 921600 baud, own numbers ['+4915112345678']" in device_line(
        out, "b"
    )
    assert "warning" not in out


def test_probe_rejects_an_unknown_profile_naming_the_known_ones(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["probe", str(tmp_path), "--profile", "simcom"])
    assert out.exit_code == 2
    assert "'simcom' is not one of" in out.output and "'quectel-ec25'" in out.output


def test_a_pin_is_masked_where_it_stands_alone_not_inside_other_numbers() -> None:
    def shown(msg: str, *args: object) -> str:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)
        assert RedactSecrets(["dt_secret_123", "1234"]).filter(record)
        return record.getMessage()

    assert shown('AT+CPIN="%s" sent', "1234") == 'AT+CPIN="***" sent'
    assert shown("pin 1234") == "pin ***"
    # The same digits inside a phone number or an id are not the PIN: left as they are.
    assert shown("sms 81234 to +4912345678") == "sms 81234 to +4912345678"
    assert shown("token dt_secret_123x for 1234") == "token ***x for ***"
