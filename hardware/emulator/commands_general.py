"""AT command handlers: V.250 basics, identity, SIM, network and dual-SIM switching.

Each handler answers information lines or raises the error a real modem gives; the command names
are the keys of engine.COMMANDS (AT+CLAC lists them). SMS commands live in commands_sms.py.
"""

from __future__ import annotations

import asyncio

from .engine import COMMANDS, Call, CmeError, Kind, NoFinal, PlainError, Session, Settings, command
from .profiles import ICCID_FORMATS

CHARSETS = ("GSM", "IRA", "UCS2", "HEX", "8859-1", "PCCP437")


def _flag_arg(c: Call, allowed: tuple[int, ...]) -> int:
    value = c.int_arg(0, 0)
    if value not in allowed:
        raise CmeError(3) if c.name.startswith("+") else PlainError()
    return value


# ---- V.250 basics -----------------------------------------------------------------------------


@command("E")
async def echo(s: Session, c: Call) -> list[str]:
    s.settings.echo = _flag_arg(c, (0, 1)) == 1
    return []


@command("V")
async def verbose(s: Session, c: Call) -> list[str]:
    # Numeric result codes (ATV0) are not emulated: refuse rather than answer in the wrong format.
    if _flag_arg(c, (0, 1)) != 1:
        raise PlainError()
    return []


@command("Q", "&C", "&D", "&W", "S", "H", "X", "L", "M")
async def accepted(s: Session, c: Call) -> list[str]:
    if c.name == "S" and c.raw.endswith("?"):
        return ["000"]
    return []


@command("Z", "&F")
async def reset(s: Session, c: Call) -> list[str]:
    s.settings = Settings()
    return []


@command("I")
async def info(s: Session, c: Call) -> list[str]:
    return list(s.modem.profile.ati)


@command("D", "A")
async def dial(s: Session, c: Call) -> list[str]:
    raise CmeError(4)  # voice and data calls are outside the emulation


@command("+CGMI", "+GMI")
async def manufacturer(s: Session, c: Call) -> list[str]:
    return [] if c.kind is Kind.TEST else [s.modem.profile.manufacturer]


@command("+CGMM", "+GMM")
async def model(s: Session, c: Call) -> list[str]:
    return [] if c.kind is Kind.TEST else [s.modem.profile.model]


@command("+CGMR", "+GMR")
async def revision(s: Session, c: Call) -> list[str]:
    return [] if c.kind is Kind.TEST else [s.modem.profile.revision]


@command("+CGSN", "+GSN")
async def imei(s: Session, c: Call) -> list[str]:
    return [] if c.kind is Kind.TEST else [s.modem.imei]


@command("+GCAP")
async def gcap(s: Session, c: Call) -> list[str]:
    return ["+GCAP: +CGSM"]


@command("+CLAC")
async def clac(s: Session, c: Call) -> list[str]:
    names = sorted(n for n in COMMANDS if n[0] in "+^&")
    return ["AT" + n for n in names]


@command("+CPAS")
async def cpas(s: Session, c: Call) -> list[str]:
    return ["+CPAS: (0-5)"] if c.kind is Kind.TEST else ["+CPAS: 0"]


@command("+CHUP", "+CVHU")
async def hang_up(s: Session, c: Call) -> list[str]:
    return []


@command("+CBC")
async def battery(s: Session, c: Call) -> list[str]:
    return [] if c.kind is Kind.TEST else ["+CBC: 0,100,4200"]


# ---- SIM --------------------------------------------------------------------------------------


@command("+CIMI")
async def cimi(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return []
    s.modem.check_sim(s.slot, sms=False)
    return [s.sim.sim.imsi]


@command("+CCID", "+QCCID", "+ICCID", "+CICCID", "^ICCID")
async def iccid(s: Session, c: Call) -> list[str]:
    asked = "AT" + c.text.upper()
    if c.kind is Kind.TEST:
        return []
    if asked not in s.modem.profile.iccid_commands:
        raise PlainError()  # each family answers only its own ICCID command (spec section 7)
    s.modem.check_sim(s.slot, sms=False)
    return [ICCID_FORMATS[asked].format(iccid=s.sim.sim.iccid)]


@command("+CRSM")
async def crsm(s: Session, c: Call) -> list[str]:
    """Restricted SIM access: only READ BINARY of EF_ICCID (2FE2) and EF_SPN (6F46)."""
    if c.kind is Kind.TEST:
        return []
    s.modem.check_sim(s.slot, sms=False)
    args = c.args
    if len(args) < 2 or args[0] != "176":
        raise CmeError(4)
    if args[1] == "12258":
        digits = s.sim.sim.iccid + ("F" if len(s.sim.sim.iccid) % 2 else "")
        swapped = "".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2))
        return [f'+CRSM: 144,0,"{swapped}"']
    if args[1] == "28486":
        name = s.sim.sim.home.name.encode("ascii")[:16]
        return [f'+CRSM: 144,0,"00{name.hex().upper()}{"FF" * (16 - len(name))}"']
    return ['+CRSM: 106,130,""']  # file not found


@command("+CNUM")
async def cnum(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return []
    s.modem.check_sim(s.slot, sms=False)
    return [f'+CNUM: "","{s.sim.sim.number}",145']


@command("+CSPN")
async def cspn(s: Session, c: Call) -> list[str]:
    s.modem.check_sim(s.slot, sms=False)
    return [f'+CSPN: "{s.sim.sim.home.name}",0']


@command("+CPIN")
async def cpin(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return []
    s.modem.check_sim(s.slot, sms=False, pin_ok=True)
    if c.kind is Kind.READ:
        line = f"+CPIN: {s.modem.pin_state()}"
        if s.modem.profile.cpin_without_ok:
            raise NoFinal([line])  # Wavecom: no OK after the status line
        return [line]
    args = c.args
    if not args or not args[0]:
        raise CmeError(3)
    s.modem.enter_pin(args[0])
    return []


# ---- radio and network ------------------------------------------------------------------------


@command("+CFUN")
async def cfun(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CFUN: (0,1,4),(0-1)"]
    if c.kind is Kind.READ:
        return [f"+CFUN: {s.modem.cfun}"]
    fun = c.int_arg(0)
    reset = c.int_arg(1, 0)
    if fun not in (0, 1, 4) or reset not in (0, 1):
        raise CmeError(3)
    if reset:
        # AT+CFUN=1,1 reboots: OK first, then the boot URCs after a moment, as on SIMCom/Quectel
        asyncio.get_running_loop().call_later(0.2, s.modem.boot)
        return []
    s.modem.set_cfun(fun)
    return []


@command("+CSQ")
async def csq(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CSQ: (0-31,99),(0-7,99)"]
    if not s.modem.registered(s.slot) and s.modem.cfun != 1:
        return ["+CSQ: 99,99"]
    return [f"+CSQ: {s.sim.sim.csq},99"]


def _reg_line(s: Session, name: str, n: int) -> str:
    stat = s.modem.registration(s.slot)
    line = f"{name}: {n},{stat}"
    if n == 2 and stat in (1, 5):
        sim = s.sim.sim
        lac, ci = f"{sim.lac:04X}", f"{sim.ci:X}"
        if s.modem.profile.creg_quoted:
            line += f',"{lac}","{ci}"'
        else:
            line += f",{lac},{ci}"  # Huawei prints LAC and CI unquoted
    return line


@command("+CREG", "+CGREG", "+CEREG")
async def creg(s: Session, c: Call) -> list[str]:
    attr = c.name[1:].lower()
    if c.kind is Kind.TEST:
        return [f"{c.name}: (0-2)"]
    if c.kind is Kind.READ:
        return [_reg_line(s, s.modem.urc_name(c.name, s.slot), getattr(s.settings, attr))]
    setattr(s.settings, attr, _flag_arg(c, (0, 1, 2)))
    return []


@command("+COPS")
async def cops(s: Session, c: Call) -> list[str]:
    sim = s.sim.sim
    if c.kind is Kind.TEST:
        op = sim.serving
        return [f'+COPS: (2,"{op.name}","{op.short}","{op.code}",0),,(0-4),(0-2)']
    if c.kind is Kind.READ:
        if not s.modem.registered(s.slot):
            return ["+COPS: 0"]
        fmt = s.settings.cops_format
        op = sim.serving
        name = {0: op.name, 1: op.short, 2: op.code}[fmt]
        return [f'+COPS: 0,{fmt},"{name}",0']
    mode = c.int_arg(0)
    if mode == 3:
        fmt = c.int_arg(1)
        if fmt not in (0, 1, 2):
            raise CmeError(3)
        s.settings.cops_format = fmt
        return []
    if mode in (0, 1, 2, 4):
        if (
            mode == 1
            and len(c.args) > 2
            and c.args[2]
            not in (
                sim.serving.code,
                sim.serving.name,
                sim.serving.short,
            )
        ):
            raise CmeError(30)
        return []
    raise CmeError(3)


@command("+CGATT")
async def cgatt(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CGATT: (0,1)"]
    if c.kind is Kind.READ:
        return [f"+CGATT: {1 if s.modem.registered(s.slot) else 0}"]
    return []


@command("+CGSMS")
async def cgsms(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CGSMS: (0-3)"]
    if c.kind is Kind.READ:
        return ["+CGSMS: 1"]
    return []


@command("+CSCS")
async def cscs(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CSCS: (" + ",".join(f'"{cs}"' for cs in CHARSETS) + ")"]
    if c.kind is Kind.READ:
        return [f'+CSCS: "{s.settings.cscs}"']
    args = c.args
    if not args or args[0].upper() not in CHARSETS:
        raise CmeError(4)
    s.settings.cscs = args[0].upper()
    return []


@command("+CMEE")
async def cmee(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CMEE: (0-2)"]
    if c.kind is Kind.READ:
        return [f"+CMEE: {s.settings.cmee}"]
    s.settings.cmee = _flag_arg(c, (0, 1, 2))
    return []


@command("^CURC")
async def curc(s: Session, c: Call) -> list[str]:
    if not s.modem.profile.noise_urcs:
        raise PlainError()
    if c.kind is Kind.READ:
        return [f"^CURC: {int(s.settings.curc)}"]
    if c.kind is Kind.TEST:
        return ["^CURC: (0-1)"]
    s.settings.curc = _flag_arg(c, (0, 1)) == 1
    return []


# ---- dual SIM ---------------------------------------------------------------------------------


def _select_sim(s: Session, c: Call, first: int) -> list[str]:
    """The set form of a SIM switch: the styles differ only in numbering (SIMCom 1-2, Quectel
    0-1)."""
    number = c.int_arg(0)
    if number not in (first, first + 1):
        raise CmeError(3)
    s.modem.switch_sim(number - first)
    return []


@command("+CDSDS")
async def cdsds(s: Session, c: Call) -> list[str]:
    """SIMCom SIM800C-DS: select the active SIM (1 or 2) of a single-standby module."""
    if s.modem.dual_sim != "cdsds":
        raise PlainError()
    if c.kind is Kind.TEST:
        return ["+CDSDS: (1,2)"]
    if c.kind is Kind.READ:
        return [f"+CDSDS: SIM{s.modem.active_slot + 1},1,0"]
    return _select_sim(s, c, 1)


@command("+QDSIM")
async def qdsim(s: Session, c: Call) -> list[str]:
    """Quectel: select the SIM holder (0 or 1); the module re-registers after a delay."""
    if s.modem.dual_sim != "qdsim":
        raise PlainError()
    if c.kind is Kind.TEST:
        return ["+QDSIM: (0,1)"]
    if c.kind is Kind.READ:
        return [f"+QDSIM: {s.modem.active_slot}"]
    return _select_sim(s, c, 0)


@command("+CSQDS")
async def csqds(s: Session, c: Call) -> list[str]:
    """SIM800C-DS: signal of SIM 2 while it is the active one."""
    if s.modem.dual_sim != "cdsds":
        raise PlainError()
    sim = s.modem.sims[1].sim
    return [f"+CSQDS: {sim.csq if s.modem.registered(1) else 99},99"]
