"""AT command handlers for SMS (3GPP 27.005): settings, sending, listing, reading, deleting.

PDU mode is the real path (the agent and Gammu use it); text mode is emulated through the same
codec so both modes put identical parts on the virtual network.
"""

from __future__ import annotations

import asyncio
import re

from simhive.agent.modem import pdu

from .engine import Call, CmsError, Kind, Session, command
from .modem import _scts
from .storage import (
    REC_READ,
    REC_UNREAD,
    STAT_TEXT,
    STO_SENT,
    STO_UNSENT,
    TEXT_STAT,
    StoredMessage,
)

NUMBER = re.compile(r"^\+?[0-9]{1,20}$")


def _parse_ranges(spec: str) -> list[set[int]]:
    """'(0-2),(0,1)' -> [{0,1,2},{0,1}]: the allowed values per +CNMI parameter."""
    out: list[set[int]] = []
    for group in re.findall(r"\(([^)]*)\)", spec):
        values: set[int] = set()
        for item in group.split(","):
            if "-" in item:
                lo, hi = item.split("-")
                values.update(range(int(lo), int(hi) + 1))
            elif item:
                values.add(int(item))
        out.append(values)
    return out


def _ready(s: Session) -> None:
    s.modem.check_sim(s.slot, sms=True)


def _to_te(s: Session, text: str) -> str:
    """A string parameter in the TE character set of +CSCS (UCS2: hex of UTF-16BE)."""
    if s.settings.cscs == "UCS2":
        return text.encode("utf-16-be").hex().upper()
    if s.settings.cscs == "HEX":
        return text.encode("latin-1", "replace").hex().upper()
    return text


def _from_te(s: Session, text: str) -> str:
    if s.settings.cscs in ("UCS2", "HEX"):
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise CmsError(305) from None
        if s.settings.cscs == "HEX":
            return raw.decode("latin-1")
        try:
            return raw.decode("utf-16-be")
        except UnicodeDecodeError:
            raise CmsError(305) from None
    return text


def _number(s: Session, arg: str | None, error: int = 304) -> str:
    """A <da>/<sca> parameter in the TE character set; `error` when it is not a phone number."""
    number = _from_te(s, arg) if arg else ""
    if not NUMBER.match(number):
        raise CmsError(error)
    return number


def _pdu_submit(body: bytes) -> tuple[pdu.Submit, bytes]:
    """PDU mode: the hex line after the prompt, with its SCA field; 304 when it is not one."""
    try:
        raw = bytes.fromhex(body.decode("latin-1").strip())
        return pdu.decode_submit(raw, with_smsc=True), raw
    except (ValueError, pdu.PduError):
        raise CmsError(304) from None


def _message_at(s: Session, c: Call, mem: int) -> StoredMessage:
    """The message at index <index> of preferred memory `mem` (0: mem1, 1: mem2); 321 if empty."""
    _ready(s)
    message = s.sim.storage[s.settings.cpms[mem]].get(c.int_arg(0))
    if message is None:
        raise CmsError(321)
    return message


@command("+CMGF")
async def cmgf(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CMGF: (0,1)"]
    if c.kind is Kind.READ:
        return [f"+CMGF: {s.settings.cmgf}"]
    mode = c.int_arg(0, 0)
    if mode not in (0, 1):
        raise CmsError(302)
    s.settings.cmgf = mode
    return []


@command("+CSMS")
async def csms(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CSMS: (0,1)"]
    if c.kind is Kind.READ:
        return [f"+CSMS: {s.settings.csms},1,1,1"]
    service = c.int_arg(0)
    if service not in (0, 1):
        raise CmsError(302)
    s.settings.csms = service
    return ["+CSMS: 1,1,1"]


@command("+CPMS")
async def cpms(s: Session, c: Call) -> list[str]:
    profile = s.modem.profile
    allowed = (profile.cpms_mem1, profile.cpms_mem2, profile.cpms_mem3)
    if c.kind is Kind.TEST:
        return ["+CPMS: " + ",".join("(" + ",".join(f'"{m}"' for m in a) + ")" for a in allowed)]
    _ready(s)
    storage = s.sim.storage
    if c.kind is Kind.READ:
        parts = [f'"{m}",{storage[m].used},{storage[m].capacity}' for m in s.settings.cpms]
        return ["+CPMS: " + ",".join(parts)]
    args = [a.upper() for a in c.args]
    if not 1 <= len(args) <= 3:
        raise CmsError(302)
    mems = list(s.settings.cpms)
    for i, name in enumerate(args):
        if name not in allowed[i]:
            raise CmsError(302)  # Wavecom rejects "SR" as mem3 (spec section 2, step 8)
        mems[i] = name
    s.settings.cpms = (mems[0], mems[1], mems[2])
    return ["+CPMS: " + ",".join(f"{storage[m].used},{storage[m].capacity}" for m in mems)]


@command("+CNMI")
async def cnmi(s: Session, c: Call) -> list[str]:
    ranges = s.modem.profile.cnmi_ranges
    if c.kind is Kind.TEST:
        return [f"+CNMI: {ranges}"]
    if c.kind is Kind.READ:
        return ["+CNMI: " + ",".join(str(v) for v in s.settings.cnmi)]
    allowed = _parse_ranges(ranges)
    values = list(s.settings.cnmi)
    args = c.args
    if not 1 <= len(args) <= 5:
        raise CmsError(303)
    for i, raw in enumerate(args):
        if raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            raise CmsError(303) from None
        if value not in allowed[i]:
            raise CmsError(303)
        values[i] = value
    s.settings.cnmi = (values[0], values[1], values[2], values[3], values[4])
    return []


@command("+CSCA")
async def csca(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return []
    _ready(s)
    if c.kind is Kind.READ:
        number = s.settings.csca or s.sim.sim.serving.smsc
        kind = 145 if number.startswith("+") else 129
        return [f'+CSCA: "{_to_te(s, number)}",{kind}']
    s.settings.csca = _number(s, c.args[0] if c.args else None)
    return []


@command("+CSMP")
async def csmp(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return []
    if c.kind is Kind.READ:
        return ["+CSMP: " + ",".join(str(v) for v in s.settings.csmp)]
    values = list(s.settings.csmp)
    for i in range(min(4, len(c.args))):
        if c.args[i] != "":
            values[i] = c.int_arg(i)
    s.settings.csmp = (values[0], values[1], values[2], values[3])
    return []


@command("+CMMS")
async def cmms(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return ["+CMMS: (0-2)"]
    if c.kind is Kind.READ:
        return [f"+CMMS: {s.settings.cmms}"]
    s.settings.cmms = c.int_arg(0, 0)
    return []


@command("+CNMA")
async def cnma(s: Session, c: Call) -> list[str]:
    """Acknowledge the oldest direct +CMT/+CDS (27.005 3.4.4); 340 when none is expected."""
    if c.kind is Kind.TEST:
        return ["+CNMA: (0-2)"]
    if not s.pending_acks:
        raise CmsError(340)
    s.pending_acks.pop(0).cancel()
    s.modem.network.kick()  # the next direct delivery the network held may go out now
    return []


def _text_submit(s: Session, destination: str, body: bytes) -> tuple[pdu.Submit, bytes]:
    """Text mode: build the part the modem would send from +CSMP and the entered text."""
    try:
        text = _from_te(s, body.decode("latin-1"))
    except UnicodeDecodeError:
        raise CmsError(305) from None
    fo, vp, _pid, dcs = s.settings.csmp
    coding = pdu.Coding.UCS2 if dcs & 0x0C == 0x08 else pdu.Coding.GSM7
    try:
        parts = pdu.encode_submit(
            destination,
            text,
            status_report=bool(fo & 0x20),
            validity_minutes=1440 if fo & 0x10 else None,
            coding=coding,
        )
    except pdu.PduError:
        raise CmsError(305) from None
    if len(parts) != 1:
        raise CmsError(305)  # text mode sends one SMS: longer text is a client error
    try:
        return pdu.decode_submit(parts[0].pdu, with_smsc=True), parts[0].pdu
    except pdu.PduError:
        raise CmsError(305) from None


@command("+CMGS")
async def cmgs(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return []
    if c.kind is not Kind.SET:
        raise CmsError(302)
    text_mode = s.settings.cmgf == 1
    if text_mode:
        destination = _number(s, c.args[0] if c.args else None)
        length = 0
    else:
        length = c.int_arg(0)
        if not 7 <= length <= 175:
            raise CmsError(304)
    _ready(s)
    s.prompt()
    body = await s.read_body(text_mode=text_mode)
    if body is None:
        return []  # ESC: the submit is abandoned and the modem answers OK
    if text_mode:
        submit, raw = _text_submit(s, destination, body)
    else:
        submit, raw = _pdu_submit(body)
        if len(raw) - 1 - raw[0] != length:
            raise CmsError(304)  # <length> must count the TPDU octets after the SCA field
    reference = await _transmit(s, submit, raw, "text" if text_mode else "pdu")
    return [f"+CMGS: {reference}"]


async def _transmit(s: Session, submit: pdu.Submit, raw: bytes, mode: str) -> int:
    """Hand one part to the network as AT+CMGS and AT+CMSS do; returns its TP-MR."""
    modem, slot = s.modem, s.slot
    if not modem.registered(slot):
        raise CmsError(331)
    latency = modem.network.submit_latency(modem.faults.latency)
    if latency > 0:
        await asyncio.sleep(latency)  # the radio round trip; the port stays busy meanwhile
    code = modem.faults.take_cms_error(submit.destination, slot)
    if code is not None:
        raise CmsError(code)
    if not modem.registered(slot):
        raise CmsError(331)  # registration lost during the submit
    reference = s.sim.take_mr()
    modem.network.accept_submit(modem, slot, submit, reference, mode=mode, raw_pdu=raw)
    return reference


@command("+CMSS")
async def cmss(s: Session, c: Call) -> list[str]:
    """Send a message stored with AT+CMGW (from mem2), optionally to another number."""
    if c.kind is Kind.TEST:
        return []
    stored = _message_at(s, c, 1)
    if stored.kind != "submit":
        raise CmsError(321)
    raw = stored.pdu
    try:
        submit = pdu.decode_submit(raw, with_smsc=True)
    except pdu.PduError:
        raise CmsError(304) from None
    if len(c.args) > 1 and c.args[1]:
        destination = _number(s, c.args[1])
        if submit.concat is not None:
            raise CmsError(304)  # a new <da> is supported for single messages only
        try:
            part = pdu.encode_submit(
                destination,
                submit.text,
                status_report=submit.status_report,
                validity_minutes=submit.validity_minutes,
                coding=submit.coding,
            )[0]
            raw = part.pdu
            submit = pdu.decode_submit(raw, with_smsc=True)
        except pdu.PduError:
            raise CmsError(304) from None
    reference = await _transmit(s, submit, raw, "stored")
    stored.stat = STO_SENT
    return [f"+CMSS: {reference}"]


@command("+CMGW")
async def cmgw(s: Session, c: Call) -> list[str]:
    """Write a message to mem2: mostly useful to fill the store and see +CMS ERROR: 322."""
    if c.kind is Kind.TEST:
        return []
    _ready(s)
    text_mode = s.settings.cmgf == 1
    memory = s.sim.storage[s.settings.cpms[1]]
    if memory.full:
        raise CmsError(322)
    s.prompt()
    body = await s.read_body(text_mode=text_mode)
    if body is None:
        return []
    if text_mode:
        submit, raw = _text_submit(s, _number(s, c.args[0] if c.args else None), body)
    else:
        submit, raw = _pdu_submit(body)
    message = StoredMessage(
        index=0,
        stat=STO_UNSENT,
        pdu=raw,
        kind="submit",
        address=submit.destination,
        text=submit.text,
        timestamp=None,
        tpdu_length=len(raw) - 1 - raw[0],
    )
    if memory.full:
        raise CmsError(322)
    return [f"+CMGW: {memory.store(message)}"]


def _text_header(s: Session, m: StoredMessage) -> str:
    stat = f'"{STAT_TEXT[m.stat]}"'
    if m.kind == "report":
        kind = 145 if m.address.startswith("+") else 129
        ts = _scts(m.timestamp) if m.timestamp else ""
        return f'{stat},6,{m.reference},"{m.address}",{kind},"{ts}","{ts}",{m.status}'
    ts = f',"{_scts(m.timestamp)}"' if m.timestamp else ""
    return f'{stat},"{_to_te(s, m.address)}",{ts}' if ts else f'{stat},"{_to_te(s, m.address)}",'


def _render(s: Session, m: StoredMessage, prefix: str, with_index: bool) -> list[str]:
    head = f"{prefix}: {m.index}," if with_index else f"{prefix}: "
    if s.settings.cmgf == 1:
        lines = [head + _text_header(s, m)]
        if m.kind != "report":
            lines.append(_to_te(s, m.text))
        return lines
    return [f"{head}{m.stat},,{m.tpdu_length}", m.pdu.hex().upper()]


@command("+CMGL")
async def cmgl(s: Session, c: Call) -> list[str]:
    text_mode = s.settings.cmgf == 1
    if c.kind is Kind.TEST:
        if text_mode:
            return ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']
        return ["+CMGL: (0-4)"]
    _ready(s)
    raw = c.args[0] if c.args else ("REC UNREAD" if text_mode else "0")
    if text_mode:
        if raw.upper() not in TEXT_STAT:
            raise CmsError(302)
        stat = TEXT_STAT[raw.upper()]
    else:
        try:
            stat = int(raw)
        except ValueError:
            raise CmsError(302) from None
        if stat not in STAT_TEXT:
            raise CmsError(302)
    memory = s.sim.storage[s.settings.cpms[0]]
    lines: list[str] = []
    for m in memory.listing(stat):
        lines += _render(s, m, "+CMGL", True)
        if m.stat == REC_UNREAD:
            m.stat = REC_READ  # listing marks received messages as read (27.005)
    return lines


@command("+CMGR")
async def cmgr(s: Session, c: Call) -> list[str]:
    if c.kind is Kind.TEST:
        return []
    m = _message_at(s, c, 0)
    lines = _render(s, m, "+CMGR", False)
    if m.stat == REC_UNREAD:
        m.stat = REC_READ
    return lines


@command("+CMGD")
async def cmgd(s: Session, c: Call) -> list[str]:
    memory = s.sim.storage[s.settings.cpms[0]]
    if c.kind is Kind.TEST:
        indexes = ",".join(str(i) for i in sorted(memory.messages))
        return [f"+CMGD: ({indexes}),(0-4)"]
    _ready(s)
    index = c.int_arg(0)
    flag = c.int_arg(1, 0)
    if flag not in (0, 1, 2, 3, 4):
        raise CmsError(302)
    if flag:
        memory.delete_flag(flag)
    else:
        if not 1 <= index <= memory.capacity:
            raise CmsError(321)
        memory.delete(index)  # an empty index is not an error on SIMCom or Quectel
    s.modem.network.kick()  # space freed: the SMSC may deliver what it held
    return []
