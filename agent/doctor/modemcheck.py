"""The modem part of `simhive-agent doctor`: does it answer AT, is the SIM there and unlocked,
is it registered, how is the signal, is there an SMSC number and an own number.

Read only: nothing is sent, no PIN is entered (a wrong one costs an attempt), no setting that
outlives the session is changed. On a single-standby dual-SIM modem the active SIM is read.
"""

from __future__ import annotations

import contextlib

from simhive.agent.config import DeviceConfig
from simhive.agent.modem.atchannel import AtChannel, AtCommandError, AtTimeout, ChannelClosed
from simhive.agent.modem.atinfo import csq_to_dbm, parse_cnum, parse_creg, read_identity
from simhive.agent.modem.portaccess import BUSY_ERRNOS, Roots
from simhive.agent.modem.transport import SerialTransport, TransportClosed

from .findings import Report
from .host import busy_finding

WEAK_SIGNAL_DBM = -105
# +CREG <stat> (27.007 7.2): what it means and, when it is a problem, the fix.
REGISTRATION = {
    0: ("not registered and not searching (no network service)",
        "check the antenna and coverage, that the SIM's network (2G/3G/LTE) exists here, and"
        " that the radio is on (AT+CFUN=1)"),
    2: ("not registered, searching for a network",
        "wait a minute; if it stays so, check the antenna, coverage and the SIM's network type"),
    3: ("registration denied by the network",
        "the SIM is not activated, barred or out of credit: ask the operator"),
    4: ("registration state unknown", "check coverage; try AT+CFUN=1,1 or replug the modem"),
}  # fmt: skip


async def check_modem(
    report: Report, port: str, device: DeviceConfig | None, roots: Roots, *, baudrate: int
) -> None:
    subject = port if device is None else f"device {device.name!r} on {port}"
    transport = SerialTransport(port, baudrate=baudrate)
    ch = AtChannel(transport)
    try:
        await ch.open()
    except TransportClosed as exc:
        cause = exc.__cause__
        err = cause.errno if isinstance(cause, OSError) else None
        if err in BUSY_ERRNOS or "exclusively lock" in str(cause):
            busy_finding(report, port, roots, str(cause))
        else:
            report.fail("port.open", subject, str(exc), "see the port checks above")
        return
    try:
        await _checks(report, ch, subject, device)
    except (AtTimeout, ChannelClosed) as exc:
        report.fail(
            "modem.at", subject, f"the modem stopped answering: {exc}",
            "replug the modem or power-cycle it; check its power supply",
        )  # fmt: skip
    finally:
        await ch.close()


async def _checks(report: Report, ch: AtChannel, subject: str, device: DeviceConfig | None) -> None:
    with contextlib.suppress(Exception):
        await ch.write_raw(b"\x1b\r")  # leave a "> " prompt a crashed program left open
    if not await ch.drain(tries=3, wait=2.0):
        report.fail(
            "modem.at", subject, "the modem does not answer AT",
            "check that this is the AT interface (often if02, e.g. ttyUSB2 on Quectel/SIMCom),"
            " the baudrate, and the modem's power; try it by hand: minicom -D <port>",
        )  # fmt: skip
        return
    for setup in ("ATE0", "AT+CMEE=1"):
        with contextlib.suppress(AtCommandError):
            await ch.command(setup)
    ident = await read_identity(ch)
    name = " ".join(x for x in (ident.manufacturer, ident.model) if x) or "unknown model"
    report.ok("modem.at", subject, f"answers AT ({name}, IMEI {ident.imei or 'unknown'})")
    if not await _sim(report, ch, subject, device):
        return
    await _registration(report, ch, subject)
    await _signal(report, ch, subject)
    await _smsc(report, ch, subject)
    await _own_number(report, ch, subject, device)


async def _sim(report: Report, ch: AtChannel, subject: str, device: DeviceConfig | None) -> bool:
    try:
        resp = await ch.command("AT+CPIN?", implicit_final=True)
        state = (resp.first("+CPIN") or "").strip().strip('"').upper()
    except AtCommandError as exc:
        if exc.cme == 10 or exc.cms == 310:
            report.fail(
                "sim.present", subject, "no SIM card (SIM not inserted)",
                "power off, insert the SIM (contacts down, right way round, right slot) and"
                " power on; a loose SIM contact gives the same answer",
            )  # fmt: skip
        elif exc.cme == 14 or exc.cms == 314:
            report.warn(
                "sim.present", subject, "the SIM is busy (still starting up)",
                "run the doctor again in a few seconds",
            )  # fmt: skip
        else:
            report.fail(
                "sim.present", subject, f"the SIM is not usable ({exc.final.text})",
                "reseat the SIM; try it in a phone",
            )  # fmt: skip
        return False
    if state == "READY":
        report.ok("sim.pin", subject, "SIM present, no PIN needed")
        return True
    if state in ("SIM PIN", "SIM PIN2"):
        if device is not None and device.pin:
            report.ok(
                "sim.pin", subject,
                "SIM asks for its PIN; the agent enters the configured pin at start",
            )  # fmt: skip
        else:
            where = f'[[device]] "{device.name}"' if device is not None else "the [[device]]"
            report.fail(
                "sim.pin", subject, "the SIM asks for a PIN and none is configured",
                f'set pin = "1234" (the real PIN, as a string) in {where}, or remove the'
                " PIN lock in a phone",
            )  # fmt: skip
        return False
    if state.startswith("SIM PUK") or state.startswith("PH-"):
        report.fail(
            "sim.pin", subject, f"the SIM is locked ({state}) after wrong PINs",
            "unlock it with its PUK in a phone (never guess: ten wrong PUKs destroy the SIM)",
        )  # fmt: skip
        return False
    report.fail("sim.pin", subject, f"unexpected SIM state {state or '(none)'}",
                "reseat the SIM and replug the modem")  # fmt: skip
    return False


async def _registration(report: Report, ch: AtChannel, subject: str) -> None:
    best = None
    for cmd, prefix in (("AT+CREG?", "+CREG"), ("AT+CEREG?", "+CEREG"), ("AT+CGREG?", "+CGREG")):
        try:
            resp = await ch.command(cmd)
        except AtCommandError:
            continue
        reg = parse_creg(resp.first(prefix) or "")
        if reg.registered:
            best = reg
            break
        if best is None or best.stat is None:
            best = reg
    if best is None or best.stat is None:
        report.warn("network.registration", subject, "the modem does not report registration",
                    "check with AT+CREG? by hand")  # fmt: skip
        return
    operator = await _operator(ch)
    if best.stat == 1:
        report.ok("network.registration", subject, f"registered on {operator} (home network)")
    elif best.stat == 5:
        report.warn(
            "network.registration", subject, f"registered on {operator}, roaming",
            "roaming SMS may cost more or be blocked; check the SIM's roaming terms",
        )  # fmt: skip
    else:
        message, fix = REGISTRATION.get(best.stat, REGISTRATION[4])
        report.fail("network.registration", subject, message, fix)


async def _operator(ch: AtChannel) -> str:
    with contextlib.suppress(AtCommandError):
        await ch.command("AT+COPS=3,0")
        resp = await ch.command("AT+COPS?")
        fields = (resp.first("+COPS") or "").split(",")
        if len(fields) >= 3 and fields[2].strip('"'):
            return fields[2].strip('"')
    return "an unnamed network"


async def _signal(report: Report, ch: AtChannel, subject: str) -> None:
    try:
        resp = await ch.command("AT+CSQ")
    except AtCommandError:
        return
    dbm = csq_to_dbm(resp.first("+CSQ") or "")
    if dbm is None:
        report.warn("network.signal", subject, "no signal reading (+CSQ: 99)",
                    "check the antenna connection")  # fmt: skip
    elif dbm < WEAK_SIGNAL_DBM:
        report.warn("network.signal", subject, f"weak signal: {dbm} dBm",
                    "use an external antenna away from the Pi and other modems")  # fmt: skip
    else:
        report.ok("network.signal", subject, f"signal {dbm} dBm")


async def _smsc(report: Report, ch: AtChannel, subject: str) -> None:
    try:
        resp = await ch.command("AT+CSCA?")
    except AtCommandError as exc:
        report.warn("sms.smsc", subject, f"cannot read the SMSC number ({exc.final.text})",
                    "check with AT+CSCA? by hand")  # fmt: skip
        return
    number = (resp.first("+CSCA") or "").split(",")[0].strip().strip('"')
    if number:
        report.ok("sms.smsc", subject, f"SMSC number {number}")
    else:
        report.fail(
            "sms.smsc", subject, "no SMSC number on the SIM: sends fail with +CMS ERROR: 330",
            'set it once: AT+CSCA="+<your operator\'s SMSC>" (ask the operator)',
        )  # fmt: skip


async def _own_number(
    report: Report, ch: AtChannel, subject: str, device: DeviceConfig | None
) -> None:
    number = None
    with contextlib.suppress(AtCommandError):
        number = parse_cnum(await ch.command("AT+CNUM"))
    configured = device.number_for(0) if device is not None else None
    if number:
        report.ok("sim.number", subject, f"own number {number}")
    elif configured:
        report.ok("sim.number", subject, f"own number {configured} (from the config)")
    else:
        report.warn(
            "sim.number", subject, "the SIM does not store its own number",
            'set numbers = ["+49…"] in the [[device]] so the server knows it',
        )  # fmt: skip
