"""`simhive-agent doctor`: find what keeps a modem host from working, with a fix for each.

Order: the host (ModemManager, USB storage mode, a Pi's power), then every configured port
and every USB serial port found, then the modem behind each port that is free, then the
server of each device, then the journal. Modem checks are skipped for a port that is held:
probing it would disturb whoever holds it (and fail anyway).
"""

from __future__ import annotations

import os

from simhive.agent.config import AgentConfig, DeviceConfig
from simhive.agent.modem.portaccess import Roots
from simhive.agent.tokens import token_problem

from .findings import FAIL, OK, WARN, Finding, Report
from .host import (
    check_journal,
    check_mm_probing,
    check_modemmanager,
    check_pi_power,
    check_port,
    check_usb_storage,
    discover_ports,
)
from .modemcheck import check_modem
from .servercheck import check_server

__all__ = ["FAIL", "OK", "WARN", "Finding", "Report", "Roots", "run_doctor"]


async def run_doctor(
    cfg: AgentConfig | None, roots: Roots | None = None, *, modem_checks: bool = True
) -> Report:
    roots = roots or Roots()
    report = Report()
    mm_running = bool(check_modemmanager(report, roots))
    check_usb_storage(report, roots)
    check_pi_power(report, roots)
    ports = _ports(cfg, roots)
    if not ports:
        report.warn(
            "port.found", "host", "no serial ports configured or found (ttyUSB*, ttyACM*)",
            "plug the modem in; if it shows up only as a USB storage device see usb_modeswitch",
        )  # fmt: skip
    for port, device in ports:
        if device is not None and device.backend == "gammu" and not device.ports:
            continue
        free = check_port(report, port, roots)
        if free and mm_running:
            check_mm_probing(report, port, roots)
        if free and modem_checks and (device is None or device.backend == "at"):
            await check_modem(
                report, port, device, roots,
                baudrate=device.baudrate if device is not None else 115200,
            )  # fmt: skip
    if cfg is not None:
        checked: set[tuple[str, str]] = set()
        for d in cfg.devices:
            if (d.server, d.token) not in checked:
                checked.add((d.server, d.token))
                _token_shape(report, d)
                await check_server(report, d.server, d.token, d.name)
        check_journal(report, cfg.journal)
    return report


def _ports(cfg: AgentConfig | None, roots: Roots) -> list[tuple[str, DeviceConfig | None]]:
    """Configured ports (with their device), then other USB serial ports found on the host."""
    ports: list[tuple[str, DeviceConfig | None]] = []
    seen: set[str] = set()
    for d in cfg.devices if cfg is not None else ():
        for p in d.ports:
            ports.append((p, d))
            seen.add(os.path.realpath(p))
    for p in discover_ports(roots):
        if os.path.realpath(p) not in seen:
            seen.add(os.path.realpath(p))
            ports.append((p, None))
    return ports


def _token_shape(report: Report, d: DeviceConfig) -> None:
    problem = token_problem(d.token)
    if problem:
        report.fail("config.token", f"device {d.name!r}", problem,
                    "use the token `simhive-server device create` printed")  # fmt: skip
