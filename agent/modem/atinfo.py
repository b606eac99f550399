"""Identity, SIM and network information over AT.

Parsers are plain functions over reply text (unit-tested against replies recorded from real
modems); the readers issue the commands. Unknown values stay None: a guessed ICCID or number
would be reported to the server as fact.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

from .atchannel import AtChannel, AtCommandError, Response
from .base import ModemIdentity
from .digits import is_digits, parse_uint
from .profiles import Profile

log = logging.getLogger(__name__)

__all__ = [
    "NetworkState",
    "csq_to_dbm",
    "parse_cnum",
    "parse_cops",
    "parse_creg",
    "parse_iccid",
    "read_identity",
    "read_iccid",
    "read_network",
]


def _unquote(s: str) -> str:
    return s.strip().strip('"').strip()


def _clean(resp: Response, prefix: str) -> str:
    """A bare-or-prefixed single value (AT+CGMI answers "SIMCOM_Ltd" or "+CGMI: SIMCOM_Ltd")."""
    lines: list[str] = []
    for info in resp.lines:
        text = info.line
        head, sep, rest = text.partition(":")
        if sep and head.strip().upper() == prefix:
            text = rest
        text = " ".join(_unquote(text).split())  # Wavecom pads with odd whitespace
        if text:
            lines.append(text)
    return " ".join(lines)  # Nokia answers CGMR in several lines


def csq_to_dbm(args: str) -> int | None:
    """`+CSQ: 21,99` -> -71 dBm (27.007: -113 + 2*rssi for 0..31; 99 unknown)."""
    rssi = parse_uint(args.split(",")[0], maximum=31)
    return None if rssi is None else -113 + 2 * rssi


@dataclass(frozen=True)
class Registration:
    stat: int | None
    lac: str | None = None
    ci: str | None = None

    @property
    def registered(self) -> bool:
        return self.stat in (1, 5)

    @property
    def roaming(self) -> bool:
        return self.stat == 5


def parse_creg(args: str, *, solicited: bool = True) -> Registration:
    """`2,1,"4CA","81DE445"` / Huawei `2,1,4CA,81DE445` / `0,5` / URC `1,"4CA","81DE"`.

    A read reply starts with <n>; a URC starts with <stat>. Quotes may be missing or unbalanced
    (Gammu tests/at-creg-corner), LAC may be empty.
    """
    fields = [f.strip().replace('"', "") for f in args.split(",")]
    if solicited and len(fields) == 1:
        solicited = False  # some firmware answers the read with <stat> only
    idx = 1 if solicited else 0
    stat = parse_uint(fields[idx]) if idx < len(fields) else None
    if stat is None:
        return Registration(None)
    lac = fields[idx + 1] if len(fields) > idx + 1 and fields[idx + 1] else None
    ci = fields[idx + 2] if len(fields) > idx + 2 and fields[idx + 2] else None
    return Registration(stat, lac, ci)


def parse_cops(args: str) -> tuple[int | None, str | None]:
    """`0,2,"26201",7` -> (2, "26201"); `0` (no operator) -> (None, None)."""
    parts = args.split(",", 2)
    if len(parts) < 3:
        return None, None
    fmt = parse_uint(parts[1])
    oper = parts[2]
    if oper.startswith('"'):
        end = oper.find('"', 1)
        oper = oper[1:end] if end > 0 else oper[1:]
    else:
        oper = oper.split(",")[0]
    oper = oper.strip()
    return fmt, (oper or None)


def parse_cnum(resp: Response) -> str | None:
    """`+CNUM: "Own","+4915112345678",145` -> "+4915112345678"; an empty EF_MSISDN -> None."""
    for args in resp.info("+CNUM"):
        parts = [p.strip().strip('"') for p in args.split(",")]
        if len(parts) >= 2:
            number = parts[1]
            type_ = parts[2] if len(parts) > 2 else ""
            if re.fullmatch(r"\+?[0-9]{3,20}", number):
                if type_ == "145" and not number.startswith("+"):
                    number = "+" + number
                return number
    return None


def _swap_nibbles(hexstr: str) -> str:
    return "".join(hexstr[i + 1] + hexstr[i] for i in range(0, len(hexstr) - 1, 2))


def parse_iccid(text: str, *, crsm: bool = False) -> str | None:
    """An ICCID from any vendor reply; CRSM returns EF_ICCID raw (nibble-swapped BCD)."""
    if crsm:
        # +CRSM: 144,0,"98941021436587092143" : sw1 144 = success
        parts = [p.strip().strip('"') for p in text.split(",")]
        if len(parts) < 3 or parts[0] != "144":
            return None
        text = _swap_nibbles(parts[2])
    m = re.search(r"[0-9]{18,20}[0-9Ff]?", text.replace('"', ""))
    if m is None:
        return None
    iccid = m.group(0).rstrip("Ff")
    return iccid if 18 <= len(iccid) <= 20 else None


async def _try(
    ch: AtChannel, command: str, *, bare: bool = False, prefixes: tuple[str, ...] | None = None
) -> Response | None:
    # Only a refusal means "not supported here"; a timeout means the modem hangs, and reading
    # ten more values from a hung modem would stall the caller for minutes: let it propagate.
    try:
        return await ch.command(command, bare=bare, prefixes=prefixes)
    except AtCommandError:
        return None


async def read_identity(ch: AtChannel) -> ModemIdentity:
    values: dict[str, str] = {}
    for key, cmd, prefix in (
        ("manufacturer", "AT+CGMI", "+CGMI"),
        ("model", "AT+CGMM", "+CGMM"),
        ("firmware", "AT+CGMR", "+CGMR"),
        ("imei", "AT+CGSN", "+CGSN"),
    ):
        resp = await _try(ch, cmd, bare=True, prefixes=(prefix,))
        values[key] = _clean(resp, prefix) if resp else ""
    imei = re.search(r"[0-9]{14,17}", values["imei"])
    values["imei"] = imei.group(0) if imei else ""
    if not values["model"]:
        resp = await _try(ch, "ATI", bare=True, prefixes=())
        values["model"] = _clean(resp, "") if resp else ""
    return ModemIdentity(**values)


async def read_iccid(
    ch: AtChannel, profile: Profile, known: str | None = None
) -> tuple[str | None, str | None]:
    """Try the profile's ICCID commands in order, `known` (the one that worked before) first.

    Returns (ICCID, the command that gave it) so the next read starts with that command."""
    commands = list(profile.iccid_commands)
    if known:
        commands.sort(key=lambda c: c[0] != known)
    for cmd, prefix in commands:
        is_crsm = cmd.startswith("AT+CRSM")
        # SIMCom's AT+CCID answers bare digits on 2G firmware and "+CCID:" on others.
        resp = await _try(ch, cmd, bare=not is_crsm, prefixes=(prefix,) if prefix else ())
        if resp is None:
            continue
        text = resp.first("+CRSM") if is_crsm else _clean(resp, prefix or "")
        iccid = parse_iccid(text or "", crsm=is_crsm)
        if iccid:
            return iccid, cmd
    return None, None


@dataclass(frozen=True)
class NetworkState:
    imsi: str | None
    operator: str | None
    operator_code: str | None
    registered: bool
    roaming: bool
    signal_dbm: int | None
    number: str | None
    spn: str | None = None  # the SIM's own brand (differs from `operator` when roaming)


def parse_spn(args: str) -> str | None:
    """`+CSPN: "Telekom.de",0` -> "Telekom.de"; an empty name -> None."""
    m = re.match(r'\s*"([^"]*)"', args)
    name = (m.group(1) if m else args.split(",")[0]).strip()
    return name or None


async def read_network(ch: AtChannel) -> NetworkState:
    imsi = None
    resp = await _try(ch, "AT+CIMI", bare=True, prefixes=("+CIMI",))
    if resp is not None:
        m = re.search(r"[0-9]{6,15}", _clean(resp, "+CIMI"))
        imsi = m.group(0) if m else None
    code = name = None
    # Numeric first, then the long name: Gammu's GetNetworkInfo does exactly this.
    if await _try(ch, "AT+COPS=3,2") is not None:
        resp = await _try(ch, "AT+COPS?")
        if resp is not None:
            _, code = parse_cops(resp.first("+COPS") or "")
            if code and not is_digits(code):
                code = None
    if await _try(ch, "AT+COPS=3,0") is not None:
        resp = await _try(ch, "AT+COPS?")
        if resp is not None:
            _, name = parse_cops(resp.first("+COPS") or "")
    with contextlib.suppress(Exception):
        await ch.command("AT+COPS=3,2")  # keep numeric for later URCs and reads
    reg = Registration(None)
    for cmd, prefix in (("AT+CREG?", "+CREG"), ("AT+CEREG?", "+CEREG"), ("AT+CGREG?", "+CGREG")):
        resp = await _try(ch, cmd)
        if resp is not None:
            r = parse_creg(resp.first(prefix) or "")
            if r.registered:
                reg = r
                break
            if reg.stat is None:
                reg = r
    signal = None
    resp = await _try(ch, "AT+CSQ")
    if resp is not None:
        signal = csq_to_dbm(resp.first("+CSQ") or "")
    number = None
    resp = await _try(ch, "AT+CNUM")
    if resp is not None:
        number = parse_cnum(resp)
    spn = None
    # EF_SPN via the SIMCom/Quectel/generic read command; many modems lack it (ERROR).
    resp = await _try(ch, "AT+CSPN?")
    if resp is not None:
        spn = parse_spn(resp.first("+CSPN") or "")
    return NetworkState(imsi, name, code, reg.registered, reg.roaming, signal, number, spn)
