"""`simhive-emulator run`: virtual modems on ptys with a control API, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import tempfile
from pathlib import Path

import click

from simhive import __version__

from .faults import FaultError, parse_cli_fault
from .modem import DUAL_SIM_STYLES
from .profiles import PROFILES


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="simhive-emulator", message="%(prog)s %(version)s")
def main() -> None:
    """simhive's virtual GSM modem emulator (see docs/emulator.md)."""


@main.command()
@click.option("--modems", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option(
    "--profile",
    default="generic",
    show_default=True,
    help=f"Modem family, or a comma list used in turn per modem: {', '.join(PROFILES)}.",
)
@click.option(
    "--dual-sim",
    "dual_sim",
    default=None,
    help=f"{'|'.join(DUAL_SIM_STYLES)} (comma list allowed); default: the profile's own style.",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for emulator.json and the port links (default: a new temp dir).",
)
@click.option(
    "--latency",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds each AT+CMGS takes (the radio round trip).",
)
@click.option(
    "--latency-jitter",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Each submit takes latency +- up to this many seconds (uniform; never below 0).",
)
@click.option(
    "--report-delay",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Seconds from delivery to the status report.",
)
@click.option(
    "--report-outcome",
    type=click.Choice(["delivered", "failed", "expired", "rejected", "none"]),
    default="delivered",
    show_default=True,
)
@click.option(
    "--control-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port of the control API on 127.0.0.1; 0 picks a free one.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for numbers and IDs.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="[MODEM:]NAME=VALUE",
    help='Fault at start, e.g. latency=2, m2:no_network=true, cms_error={"code":41,"count":2}.',
)
@click.option(
    "--ussd",
    "ussd_replies",
    multiple=True,
    metavar="[MODEM[:SLOT]:]CODE=TEXT",
    help="Scripted USSD reply, e.g. '*100#=Balance: 5.00 EUR' (every SIM) or 'm1:1:*100#=...'.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="WARNING",
    show_default=True,
)
def run(
    modems: int,
    profile: str,
    dual_sim: str | None,
    state_dir: Path | None,
    latency: float,
    latency_jitter: float,
    report_delay: float,
    report_outcome: str,
    control_port: int,
    seed: int,
    faults: tuple[str, ...],
    ussd_replies: tuple[str, ...],
    log_level: str,
) -> None:
    """Start the modems; print one JSON line (also written to STATE/emulator.json)."""
    from .emulator import Emulator, EmulatorConfig

    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    fault_specs: list[tuple[str | None, dict[str, object]]] = []
    for text in faults:
        target: str | None = None
        head, sep, rest = text.partition(":")
        if sep and "=" not in head:
            target, text = head, rest
        fault_specs.append((target, parse_cli_fault(text)))
    config = EmulatorConfig(
        modems=modems,
        profiles=_split(profile),
        dual_sim=[None] if dual_sim is None else [s for s in _split(dual_sim)],
        state_dir=state_dir or Path(tempfile.mkdtemp(prefix="simhive-emulator-")),
        latency=latency,
        latency_jitter=latency_jitter,
        report_delay=report_delay,
        report_outcome=report_outcome,
        seed=seed,
        faults=fault_specs,
    )
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.UsageError(f"--state {config.state_dir}: {exc.strerror}") from None
    try:
        emulator = Emulator(config)
        for text in ussd_replies:
            _script_ussd(emulator, text)
    except (ValueError, FaultError) as exc:
        raise click.UsageError(str(exc)) from None
    asyncio.run(_serve(emulator, control_port))


def _script_ussd(emulator: object, text: str) -> None:
    """--ussd [MODEM[:SLOT]:]CODE=TEXT: a reply for one SIM, every SIM of a modem, or all."""
    from simhive.agent.modem.ussd import cusd_request

    from .emulator import Emulator

    assert isinstance(emulator, Emulator)
    where, sep, reply = text.partition("=")
    *target, code = where.split(":")
    if not sep or not reply or len(target) > 2:
        raise ValueError(f"--ussd {text!r}: expected [MODEM[:SLOT]:]CODE=TEXT")
    cusd_request(code)  # raises ValueError for anything but digits, * # and +
    modems = [m.modem for m in emulator.modems.values()]
    if target:
        modems = [m for m in modems if m.id == target[0]]
        if not modems:
            raise ValueError(f"--ussd {text!r}: no modem {target[0]!r}")
    for modem in modems:
        for state in modem.sims:
            if len(target) < 2 or str(state.sim.slot) == target[1]:
                state.sim.ussd[code] = reply


async def _serve(emulator: object, control_port: int) -> None:
    from .control import start_control
    from .emulator import Emulator

    assert isinstance(emulator, Emulator)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        runner = await start_control(emulator, control_port)
    except OSError as exc:
        raise click.ClickException(f"control port {control_port}: {exc.strerror}") from None
    try:
        await emulator.start()
        emulator.write_state()
    except OSError as exc:  # out of ptys, state directory not writable
        await emulator.stop()
        await runner.cleanup()
        raise click.ClickException(f"cannot start the modems: {exc}") from None
    sys.stdout.write(json.dumps(emulator.describe()) + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await emulator.stop()
        await runner.cleanup()
