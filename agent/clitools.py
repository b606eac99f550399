"""Field commands of `simhive-agent` (registered in agent/cli.py): `doctor`, `ussd`, and the
checks behind `check-config`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import NoReturn

import click
import serial

from simhive.agent.config import AgentConfig, DeviceConfig
from simhive.agent.doctor import Report, run_doctor
from simhive.agent.doctor.host import check_journal, check_port
from simhive.agent.doctor.servercheck import check_server
from simhive.agent.modem.portaccess import Roots, explain_open_error
from simhive.agent.modem.ussd import UssdError, UssdReply, cusd_request, parse_amount
from simhive.agent.tokens import token_problem


async def config_problems(cfg: AgentConfig, *, online: bool) -> Report:
    """What check-config looks at beyond the syntax: ports, tokens, journal (and the server)."""
    report = Report()
    for d in cfg.devices:
        problem = token_problem(d.token)
        if problem:
            report.fail(
                "config.token", f"device {d.name!r}", problem,
                "paste the whole token `simhive-server device create` printed",
            )  # fmt: skip
        for port in d.ports:
            if check_port(report, port, Roots()):
                _try_open(report, port, d)
    check_journal(report, cfg.journal)
    if online:
        for d in cfg.devices:
            await check_server(report, d.server, d.token, d.name)
    return report


def _try_open(report: Report, port: str, d: DeviceConfig) -> None:
    # Opened as the agent opens it (exclusive), and closed at once: nothing is written.
    try:
        serial.Serial(port, d.baudrate, timeout=0, exclusive=True).close()
    except (serial.SerialException, OSError, ValueError) as exc:
        err = exc.errno if isinstance(exc, OSError) else None
        report.fail("port.open", port, f"cannot open {port}",
                    explain_open_error(port, err, str(exc)))  # fmt: skip


def _root(value: str | None, default: str) -> Path:
    return Path(value) if value else Path(default)


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The agent's TOML config: its devices, server and journal are checked too.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--proc-root", hidden=True, default=None)
@click.option("--sys-root", hidden=True, default=None)
@click.option("--dev-root", hidden=True, default=None)
@click.option("--run-root", hidden=True, default=None)
@click.option("--etc-root", hidden=True, default=None)
def doctor(
    config_path: str | None,
    as_json: bool,
    proc_root: str | None,
    sys_root: str | None,
    dev_root: str | None,
    run_root: str | None,
    etc_root: str | None,
) -> None:  # fmt: skip
    """Check the modem host: ports, ModemManager, modems and SIMs, the server, the journal,
    a Raspberry Pi's power. Each problem comes with a fix. Exit 0 all well, 1 problems found."""
    from simhive.agent.launch import load_config, setup_logging

    setup_logging("error")
    cfg = load_config(config_path) if config_path else None
    roots = Roots(
        proc=_root(proc_root, "/proc"), sys=_root(sys_root, "/sys"), dev=_root(dev_root, "/dev"),
        run=_root(run_root, "/run"), etc=_root(etc_root, "/etc"),
    )  # fmt: skip
    report = asyncio.run(run_doctor(cfg, roots))
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(report.render())
    sys.exit(1 if report.problems else 0)


@click.command()
@click.argument("device")
@click.argument("slot", type=int)
@click.argument("code")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The agent's TOML config (the device's port, profile, PIN).",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds to wait for the network's answer.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def ussd(device: str, slot: int, code: str, config_path: str, timeout: float,
         as_json: bool) -> None:  # fmt: skip
    """Send the USSD CODE (e.g. '*100#') from SIM slot SLOT (0 = first) of DEVICE and print the
    network's answer. The agent must not be running on that modem (it holds the port)."""
    from simhive.agent.launch import load_config, setup_logging

    cfg = load_config(config_path)
    setup_logging("error", [d.token for d in cfg.devices] + [d.pin for d in cfg.devices if d.pin])
    d = next((x for x in cfg.devices if x.name == device), None)
    if d is None:
        names = ", ".join(repr(x.name) for x in cfg.devices)
        _die(f"no device {device!r} in {config_path} (devices: {names})", 2)
    if slot not in d.slots:
        _die(f"device {device!r} has SIM slots {d.slots}, not {slot}", 2)
    if d.backend != "at":
        _die(f"device {device!r} uses the {d.backend} backend, which cannot send USSD here;"
             ' use backend = "at" for USSD', 1)  # fmt: skip
    try:
        cusd_request(code)
    except ValueError as exc:
        _die(str(exc), 2)
    try:
        reply = asyncio.run(_ussd(d, slot, code, timeout))
    except _ToolError as exc:
        _die(str(exc), 1)
    amount, currency = parse_amount(reply.text)
    if as_json:
        click.echo(json.dumps({"device": device, "slot": slot, "code": code,
                               "status": reply.status, "text": reply.text, "dcs": reply.dcs,
                               "amount": amount, "currency": currency},
                              ensure_ascii=False))  # fmt: skip
    elif reply.text:
        click.echo(reply.text)
    if not reply.ok:
        _die(f"{code}: the network answered {reply.describe()}", 1)


class _ToolError(Exception):
    pass


async def _ussd(d: DeviceConfig, slot: int, code: str, wait: float) -> UssdReply:
    from simhive.agent.modem.atmodem import AtModem
    from simhive.agent.modem.base import SendError
    from simhive.agent.modem.transport import SerialTransport

    if len(d.ports) > 1:  # one port per SIM: that SIM's port, as a single-SIM modem
        port, dual, use_slot = d.ports[slot], "none", 0
    else:
        port, dual, use_slot = d.ports[0], d.dual_sim, slot
    modem = AtModem(SerialTransport(port, baudrate=d.baudrate), profile=d.profile,
                    dual_sim=dual, pin=d.pin)  # fmt: skip
    try:
        if not await modem.connect(sweep=False):
            raise _ToolError(f"modem on {port}: {modem.state_reason}")
        if modem.sim_problem:
            raise _ToolError(f"modem on {port}: {modem.sim_problem}")
        try:
            return await modem.ussd(code, slot=use_slot, wait=wait)
        except (UssdError, SendError) as exc:
            raise _ToolError(str(exc)) from None
    finally:
        await modem.stop()


def _die(message: str, code: int) -> NoReturn:
    click.echo(f"simhive-agent: {message}", err=True)
    sys.exit(code)


__all__ = ["config_problems", "doctor", "ussd"]
