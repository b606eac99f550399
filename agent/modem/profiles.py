"""Vendor profiles as data: what differs between modem families.

A profile never contains logic; the init sequence, SIM info reader and dual-SIM switcher read
these fields. `detect()` picks a profile from the +CGMI/+CGMM answers when none is configured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["PROFILES", "DualSimSpec", "Profile", "detect", "get_profile"]

# ICCID has no 27.007 command; each family answers a different one. Order matters: the first
# that answers wins, and a wrong guess only costs an ERROR. (command, reply prefix or None=bare)
_ICCID_GENERIC: tuple[tuple[str, str | None], ...] = (
    ("AT+CCID", "+CCID"),
    ("AT+QCCID", "+QCCID"),
    ("AT+CICCID", "+ICCID"),
    ("AT+ICCID", "+ICCID"),
    ("AT^ICCID?", "^ICCID"),
    ("AT+CRSM=176,12258,0,0,10", "+CRSM"),
)


@dataclass(frozen=True)
class DualSimSpec:
    """How a single-standby dual-SIM modem selects its active SIM."""

    style: str  # "cdsds" (SIMCom SIM800C-DS) or "qdsim" (Quectel)
    query: str  # command whose reply names the active slot
    reply_prefix: str
    select: str  # format string with {n}
    base: int  # the number the modem uses for slot 0 (CDSDS counts from 1, QDSIM from 0)
    after_select: tuple[str, ...] = ()  # e.g. radio off/on so the new SIM registers
    settle_seconds: float = 30.0  # how long to wait for registration after a switch


CDSDS = DualSimSpec("cdsds", "AT+CDSDS?", "+CDSDS", "AT+CDSDS={n}", base=1)
QDSIM = DualSimSpec(
    "qdsim",
    "AT+QDSIM?",
    "+QDSIM",
    "AT+QDSIM={n}",
    base=0,
    # Quectel applies the holder only after the radio is cycled (or a reboot).
    after_select=("AT+CFUN=0", "AT+CFUN=1"),
)
DUAL_SIM_STYLES = {"cdsds": CDSDS, "qdsim": QDSIM}


@dataclass(frozen=True)
class Profile:
    name: str
    iccid_commands: tuple[tuple[str, str | None], ...] = _ICCID_GENERIC
    init_extra: tuple[str, ...] = ()  # sent after the standard sequence; errors ignored
    # Line starts (upper case) that mean the modem rebooted and lost our settings...
    boot_urcs: tuple[str, ...] = ("RDY", "+CFUN: 1", "*PSREADY", "+CPIN: NOT READY")
    # ...and that its SMS stack is up (a sweep then finds what arrived during the boot).
    ready_urcs: tuple[str, ...] = ()
    dual_sim: DualSimSpec | None = None
    # Wavecom answers AT+CPIN? with "+CPIN: READY" and no OK.
    cpin_without_ok: bool = False
    storage_preference: tuple[str, ...] = ("SM", "ME", "MT")
    match: tuple[str, ...] = field(default=())  # lowercase substrings of CGMI/CGMM


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("generic"),
        Profile(
            "huawei-e173",
            iccid_commands=(("AT^ICCID?", "^ICCID"), *_ICCID_GENERIC),
            # ^RSSI/^MODE/^BOOT/^SRVST floods broke gammu-smsd (gammu#111, #126, #138).
            init_extra=("AT^CURC=0",),
            match=("huawei",),
        ),
        Profile(
            "sim800c",
            iccid_commands=(("AT+CCID", "+CCID"), *_ICCID_GENERIC),
            ready_urcs=("SMS READY",),
            # SIM800 autobauds on the first ATs; pin the rate so a reset cannot lose it.
            init_extra=("AT+IPR=115200",),
            match=("simcom", "sim800"),
        ),
        Profile(
            "sim800c-ds",
            iccid_commands=(("AT+CCID", "+CCID"), *_ICCID_GENERIC),
            ready_urcs=("SMS READY",),
            init_extra=("AT+IPR=115200",),
            dual_sim=CDSDS,
            match=("sim800c-ds", "sim800h-ds"),
        ),
        Profile(
            "quectel-ec25",
            iccid_commands=(("AT+QCCID", "+QCCID"), *_ICCID_GENERIC),
            ready_urcs=("+QIND: SMS DONE",),
            # Keep URCs on the AT port we read, not the secondary or the NMEA one.
            init_extra=('AT+QURCCFG="urcport","usbat"',),
            match=("quectel", "ec25", "eg25", "ec21", "ec200"),
        ),
        Profile(
            "wavecom",
            cpin_without_ok=True,
            init_extra=("AT+WIND=0",),
            # +WIND: 3 = "product ready" after a (re)start, unless AT+WIND masked it.
            boot_urcs=("+WIND: 3", "RDY"),
            match=("wavecom", "multiband"),
        ),
        Profile(
            "zte",
            iccid_commands=(
                ("AT+ICCID", "+ICCID"),
                ("AT+ZGETICCID", "+ZGETICCID"),
                *_ICCID_GENERIC,
            ),
            match=("zte", "qualcomm"),
        ),
    )
}


def get_profile(name: str | None) -> Profile:
    if name is None:
        return PROFILES["generic"]
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown modem profile {name!r}; known: {', '.join(PROFILES)}") from None


def detect(manufacturer: str, model: str) -> Profile:
    """Best profile for a modem that identified itself; generic when nothing matches."""
    text = f"{manufacturer} {model}".lower()
    best: Profile | None = None
    best_len = 0
    for p in PROFILES.values():
        for m in p.match:
            if m in text and len(m) > best_len:
                best, best_len = p, len(m)
    return best or PROFILES["generic"]
