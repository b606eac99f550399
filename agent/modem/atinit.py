"""The modem initialisation sequence, with capability probing.

Every step that a family may not support is optional (its error is recorded, not fatal); the
only hard requirements are that the modem answers `AT`, that the SIM is usable, and PDU mode.
Choices (storage, CNMI) are made within the ranges the modem announces with `=?` queries rather
than assumed, because e.g. Wavecom rejects "SR" storage and SIM800 offers only some CNMI modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field

from .atchannel import AtChannel, AtCommandError, AtTimeout, quote
from .digits import parse_uint
from .profiles import Profile

log = logging.getLogger(__name__)

__all__ = [
    "Capabilities",
    "InitError",
    "SimNotReady",
    "choose_cnmi",
    "initialise",
    "parse_cpms_options",
    "parse_ranges",
    "set_message_settings",
]

# Before the SIM and the SMS stack are ready, commands fail with these; retrying is what
# python-gsmmodem does (CMS 314 SIM busy, CME 14 SIM busy, CME 515 "device busy" at start-up).
BUSY_CMS = frozenset({314, 500})
BUSY_CME = frozenset({14, 515})


class InitError(Exception):
    """The modem cannot be used (no answer, no PDU mode)."""


class SimNotReady(InitError):
    """The modem answers but its SIM is missing, locked or busy; `state` says which."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


@dataclass
class Capabilities:
    storage: tuple[str, str, str] = ("SM", "SM", "SM")
    storage_options: list[list[str]] = field(default_factory=list)
    cnmi: str = ""
    cnmi_ranges: list[set[int]] = field(default_factory=list)
    # "direct" (+CDS), "stored" (+CDSI into SR memory), or "none" when the modem offers neither.
    report_mode: str = "none"
    csms_service: int | None = None
    unsupported: list[str] = field(default_factory=list)  # optional commands that failed

    def as_dict(self) -> dict[str, object]:
        return {
            "storage": list(self.storage),
            "storage_options": self.storage_options,
            "cnmi": self.cnmi,
            "cnmi_ranges": [sorted(r) for r in self.cnmi_ranges],
            "report_mode": self.report_mode,
            "csms_service": self.csms_service,
            "unsupported": self.unsupported,
        }


def parse_ranges(args: str) -> list[set[int]]:
    """`(2),(0-1,3),(0,2),(0-1),(0)` -> [{2}, {0,1,3}, {0,2}, {0,1}, {0}]."""
    out: list[set[int]] = []
    for group in re.findall(r"\(([^()]*)\)", args):
        values: set[int] = set()
        for part in group.split(","):
            part = part.strip()
            m = re.fullmatch(r"([0-9]{1,9})\s*-\s*([0-9]{1,9})", part)
            if m:
                lo, hi = int(m.group(1)), int(m.group(2))
                if hi - lo <= 255:
                    values.update(range(lo, hi + 1))
            elif (value := parse_uint(part)) is not None:
                values.add(value)
        out.append(values)
    return out


def parse_cpms_options(args: str) -> list[list[str]]:
    """`("SM","ME"),("SM","ME"),("SM","ME")` (or Alcatel's nested form) -> memory lists."""
    return [re.findall(r'"([A-Za-z0-9_]+)"', g) for g in re.findall(r"\(([^()]*)\)", args)]


def choose_cnmi(ranges: list[set[int]]) -> tuple[str, str]:
    """Pick <mode>,<mt>,<bm>,<ds>,<bfr> within the announced ranges; returns (args, report mode).

    mode 2 buffers URCs while a command runs (1 and 3 also work with our decoder); mt 1 stores
    the SMS and sends +CMTI, so nothing is lost if we are slow (the safe sweep reads it later);
    ds 1 sends +CDS directly, ds 2 stores it in SR with +CDSI.
    """

    def pick(i: int, prefs: tuple[int, ...]) -> int | None:
        if i >= len(ranges):
            return None
        for p in prefs:
            if p in ranges[i]:
                return p
        return None

    mode = pick(0, (2, 1, 3))
    mt = pick(1, (1, 2))
    bm = pick(2, (0,))
    ds = pick(3, (1, 2, 0))
    bfr = pick(4, (0,))
    values = [mode if mode is not None else 2, mt if mt is not None else 1]
    if bm is not None or ds is not None:
        values.append(bm if bm is not None else 0)
    if ds is not None:
        values.append(ds)
        if bfr is not None:
            values.append(bfr)
    report = {1: "direct", 2: "stored"}.get(ds if ds is not None else 0, "none")
    return ",".join(str(v) for v in values), report


async def _optional(ch: AtChannel, caps: Capabilities, command: str, wait: float = 5.0) -> bool:
    try:
        await ch.command(command, wait=wait)
        return True
    except AtCommandError as exc:
        caps.unsupported.append(command)
        log.debug("%s: optional %s refused: %s", ch.name, command, exc.final.text)
        return False


async def _busy_retry(ch: AtChannel, command: str, *, ready_wait: float, wait: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ready_wait
    while True:
        try:
            await ch.command(command, wait=wait)
            return
        except AtCommandError as exc:
            busy = exc.cms in BUSY_CMS or exc.cme in BUSY_CME
            if not busy or loop.time() >= deadline:
                raise
        await asyncio.sleep(0.5)


async def check_sim(ch: AtChannel, profile: Profile, *, pin: str | None, ready_wait: float) -> None:
    """AT+CPIN? until READY; enter the PIN once if asked; raise SimNotReady otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ready_wait
    pin_sent = False
    while True:
        state = ""
        try:
            # Always accept a +CPIN reply without OK: Wavecom omits it, and at this point the
            # profile may not be known yet (it is detected from +CGMI later).
            resp = await ch.command("AT+CPIN?", wait=5.0, implicit_final=True)
            state = (resp.first("+CPIN") or "").strip().strip('"').upper()
        except AtCommandError as exc:
            if exc.cme == 10 or exc.cms == 310:
                raise SimNotReady("SIM not inserted", "missing") from exc
            if exc.cme in (13, 15) or exc.cms in (313, 315):
                raise SimNotReady(f"SIM failure: {exc.final.text}", "failure") from exc
            state = "BUSY"
        if state == "READY":
            return
        if state == "SIM PIN" and pin and not pin_sent:
            # One attempt only: a wrong PIN retried blindly locks the SIM (PUK).
            pin_sent = True
            try:
                await ch.command(f"AT+CPIN={quote(pin)}", wait=10.0, secret=True)
            except AtCommandError as exc:
                # Never retried: a second wrong PIN brings the SIM closer to its PUK lock.
                raise SimNotReady(f"PIN rejected ({exc.final.text})", "pin") from None
            continue
        if state in ("SIM PIN", "SIM PIN2"):
            if not pin_sent:
                raise SimNotReady("SIM asks for a PIN and none is configured", "pin")
            if loop.time() >= deadline:
                raise SimNotReady("SIM still asks for a PIN after it was entered", "pin")
            await asyncio.sleep(0.5)  # the PIN was accepted; the SIM takes a moment to unlock
            continue
        if state.startswith("SIM PUK") or state.startswith("PH-"):
            raise SimNotReady(f"SIM locked ({state}): needs manual unlock", "puk")
        if loop.time() >= deadline:
            raise SimNotReady(f"SIM not ready ({state or 'no answer'})", "busy")
        await asyncio.sleep(0.5)


async def initialise(
    ch: AtChannel,
    profile: Profile,
    *,
    pin: str | None = None,
    ready_wait: float = 20.0,
    attempts: int = 5,
) -> Capabilities:
    caps = Capabilities()
    # Step 0: ESC cancels a "> " prompt left by a crashed process; CR ends any partial line.
    with contextlib.suppress(Exception):
        await ch.write_raw(b"\x1b\r")
    if not await ch.drain(tries=attempts, wait=2.0):
        raise InitError(f"{ch.name}: modem does not answer AT")
    await _optional(ch, caps, "ATE0")
    await _optional(ch, caps, "AT+CMEE=1")
    await check_sim(ch, profile, pin=pin, ready_wait=ready_wait)
    try:
        resp = await ch.command("AT+CFUN?", wait=5.0)
        if (resp.first("+CFUN") or "").split(",")[0].strip() != "1":
            await ch.command("AT+CFUN=1", wait=30.0)
    except AtCommandError:
        caps.unsupported.append("AT+CFUN?")
    try:
        await _busy_retry(ch, "AT+CMGF=0", ready_wait=ready_wait)
    except AtCommandError as exc:
        raise InitError(f"{ch.name}: PDU mode refused ({exc.final.text})") from exc
    await _optional(ch, caps, f"AT+CSCS={quote('GSM')}")
    try:
        resp = await ch.command("AT+CSMS?")
        caps.csms_service = parse_uint((resp.first("+CSMS") or "").split(",")[0])
        # Service 1: a direct +CDS (or +CMT) stays the modem's and the network's until we
        # acknowledge it with AT+CNMA, which the agent sends only once the report is in its
        # journal; one never acknowledged (the agent was killed first) is delivered again.
        # Under service 0 the modem acknowledges it to the network as it prints it, and a
        # kill -9 before the journal write loses it for good.
        if caps.csms_service == 0 and await _optional(ch, caps, "AT+CSMS=1"):
            caps.csms_service = 1
    except AtCommandError:
        caps.unsupported.append("AT+CSMS?")
    await set_message_settings(ch, profile, caps, ready_wait=ready_wait, probe=True)
    if not await _optional(ch, caps, "AT+CREG=2"):
        await _optional(ch, caps, "AT+CREG=1")
    await _optional(ch, caps, "AT+COPS=3,2")
    for extra in profile.init_extra:
        with contextlib.suppress(AtTimeout):
            await _optional(ch, caps, extra)
    return caps


async def set_message_settings(
    ch: AtChannel,
    profile: Profile,
    caps: Capabilities,
    *,
    ready_wait: float = 20.0,
    probe: bool = False,
) -> None:
    """PDU mode, storage and CNMI; repeated after a SIM switch (they are per SIM on SIM800-DS)."""
    if not probe:
        await _busy_retry(ch, "AT+CMGF=0", ready_wait=ready_wait)
    if probe:
        try:
            resp = await ch.command("AT+CPMS=?")
            caps.storage_options = parse_cpms_options(resp.first("+CPMS") or "")
        except AtCommandError:
            caps.storage_options = []
        mems: list[str] = []
        for i in range(3):
            opts = caps.storage_options[i] if i < len(caps.storage_options) else []
            if not opts and caps.storage_options:
                opts = caps.storage_options[-1]
            choice = next((m for m in profile.storage_preference if m in opts), None)
            mems.append(choice or (opts[0] if opts else "SM"))
        caps.storage = (mems[0], mems[1], mems[2])
    cpms = ",".join(quote(m) for m in caps.storage)
    try:
        await _busy_retry(ch, f"AT+CPMS={cpms}", ready_wait=ready_wait)
    except AtCommandError:
        caps.unsupported.append(f"AT+CPMS={cpms}")
    if probe:
        try:
            resp = await ch.command("AT+CNMI=?")
            caps.cnmi_ranges = parse_ranges(resp.first("+CNMI") or "")
        except AtCommandError:
            caps.cnmi_ranges = []
        candidates: list[tuple[str, str]] = []
        if caps.cnmi_ranges:
            candidates.append(choose_cnmi(caps.cnmi_ranges))
        # Without (or despite) =? ranges, the settings python-gsmmodem falls back to.
        candidates += [("2,1,0,1,0", "direct"), ("2,1,0,2,0", "stored"), ("2,1", "none")]
        for args, report in candidates:
            try:
                await ch.command(f"AT+CNMI={args}")
            except AtCommandError:
                continue
            caps.cnmi, caps.report_mode = args, report
            break
        else:
            caps.unsupported.append("AT+CNMI")
    elif caps.cnmi:
        try:
            await ch.command(f"AT+CNMI={caps.cnmi}")
        except AtCommandError:
            caps.unsupported.append(f"AT+CNMI={caps.cnmi}")
