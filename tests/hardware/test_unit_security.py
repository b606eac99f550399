"""The shipped units are hardened: `systemd-analyze security` rates the server at most 2.5 and the
agent at most 4.0, and the settings the deploy guide promises are there (docs/hardware.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hardware.systemd_analyze import security

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "hardware" / "systemd"
LIMITS = {"simhive-server.service": 2.5, "simhive-agent.service": 4.0}


def _service(path: Path) -> dict[str, list[str]]:
    """Every Service key with all its values (systemd keys may repeat, configparser's may not)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_exposure_score_is_within_limit(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    score, word, table = security(UNITS / name)
    with capsys.disabled():
        print(f"\nsystemd-analyze security {name}: {score} {word} (limit {LIMITS[name]})")
    assert score <= LIMITS[name], table
    # docs/hardware.md quotes the scores
    role = name.removeprefix("simhive-").removesuffix(".service")
    doc = (ROOT / "docs" / "hardware.md").read_text()
    assert f"{role} **{score} {word}**" in doc


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_promised_hardening_is_set(name: str) -> None:
    service = _service(UNITS / name)
    one = {key: values[-1] for key, values in service.items()}
    assert one["UMask"] == "0077"
    assert one["NoNewPrivileges"] == "yes"
    assert one["ProtectSystem"] == "strict"
    assert one["ProtectHome"] == "yes" and one["PrivateTmp"] == "yes"
    assert one["CapabilityBoundingSet"] == "" and one["AmbientCapabilities"] == ""
    assert set(one["RestrictAddressFamilies"].split()) <= {
        "AF_INET",
        "AF_INET6",
        "AF_UNIX",
        "AF_NETLINK",
    }
    # the one place each may write is its data directory, private to its user
    state = "/var/lib/" + one["StateDirectory"]
    assert service["ReadWritePaths"] == [state]
    assert one["StateDirectoryMode"] == "0700"
    assert one["DevicePolicy"] == "closed"


def test_agent_reaches_serial_ports_only() -> None:
    service = _service(UNITS / "simhive-agent.service")
    allowed = sorted(service["DeviceAllow"])
    assert allowed == ["char-ttyACM rw", "char-ttyAMA rw", "char-ttyS rw", "char-ttyUSB rw"]
    # PrivateUsers would unmap the dialout group that opens the ports
    assert "PrivateUsers" not in service


def test_server_sees_no_devices() -> None:
    service = _service(UNITS / "simhive-server.service")
    assert service["PrivateDevices"] == ["yes"] and "DeviceAllow" not in service
