"""Sans-IO AT response decoder: bytes in, events out.

The decoder never does I/O. The driver tells it which command is in flight (`begin`/`end`) so
that an information line is accepted as a reply only when its prefix matches that command;
everything else is routed out as an unsolicited result code (URC). Modems interleave URCs with
replies (ZTE prints `+ZPASR` before `+CMGS: n`, `+CMTI` can land inside a `CMGS` exchange), so
prefix matching is the only safe rule.

Framing tolerated: CRLF, bare CR or LF, Huawei's `\\r\\r\\n`, blank lines, echo of the command
(it returns after resets even after `ATE0`), NUL/0xFF noise at boot, the `> ` prompt that has no
line end, and input split at any byte. The partial-line buffer is bounded: an over-long line is
dropped and reported as junk instead of growing without limit.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from .digits import is_digits, parse_uint

__all__ = [
    "AtDecoder",
    "Echo",
    "Final",
    "FinalKind",
    "Info",
    "Junk",
    "Prompt",
    "Urc",
    "AtEvent",
    "reply_prefix",
]


class FinalKind(enum.Enum):
    OK = "OK"
    ERROR = "ERROR"
    CMS_ERROR = "+CMS ERROR"
    CME_ERROR = "+CME ERROR"
    # Non-standard finals seen on real devices (Huawei E220 "COMMAND NOT SUPPORT", others
    # "TOO MANY PARAMETERS"); they end a command like ERROR does.
    VENDOR_ERROR = "vendor"
    # Dial finals: only meaningful as the end of ATD/ATA, otherwise they are URCs.
    NO_CARRIER = "NO CARRIER"


@dataclass(frozen=True)
class Final:
    kind: FinalKind
    code: int | None = None  # numeric +CMS/+CME code (None when CMEE=2 text or plain ERROR)
    text: str = ""  # the whole line

    @property
    def ok(self) -> bool:
        return self.kind is FinalKind.OK


@dataclass(frozen=True)
class Info:
    """A reply line of the command in flight; `data` is the PDU line after +CMGR/+CMGL headers."""

    line: str
    data: str | None = None


@dataclass(frozen=True)
class Prompt:
    """The `> ` prompt of AT+CMGS: the modem waits for the PDU and Ctrl-Z."""


@dataclass(frozen=True)
class Urc:
    """An unsolicited line. `name` is the code with any SIM-2 `DS` suffix removed, `slot` 0 or 1."""

    name: str
    args: str
    line: str
    slot: int = 0
    data: str | None = None  # the PDU line following +CMT/+CDS


@dataclass(frozen=True)
class Echo:
    line: str


@dataclass(frozen=True)
class Junk:
    data: bytes
    reason: str


AtEvent = Final | Info | Prompt | Urc | Echo | Junk

# URCs that carry a PDU on the next line (27.005 section 3.4.1 / 3.4.3).
_URC_WITH_PDU = frozenset({"+CMT", "+CDS"})
# Reply headers that carry a PDU on the next line in PDU mode.
_INFO_WITH_PDU = frozenset({"+CMGR", "+CMGL"})
# Codes that dual-standby and some single-standby parts repeat with a `DS` suffix for SIM 2
# (Sierra HL-DS: +CMTIDS, +CREGDS, *PSREADYDS...; SIM800C-DS: +CMTIDS, RINGDS).
_DS_CAPABLE = frozenset(
    {
        "+CMTI",
        "+CMT",
        "+CDS",
        "+CDSI",
        "+CREG",
        "+CGREG",
        "+CEREG",
        "+CSQ",
        "+CPIN",
        "+CUSD",
        "+CLIP",
        "RING",
        "*PSREADY",
        "+CMGS",
        "+CMGR",
        "+COPS",
    }
)
# Bare words that are URCs, not replies, even while a command with bare replies is in flight.
_BARE_URCS = frozenset(
    {
        "RING",
        "RINGDS",
        "RDY",
        "CALL READY",
        "SMS READY",
        "NORMAL POWER DOWN",
        "UNDER-VOLTAGE POWER DOWN",
        "UNDER-VOLTAGE WARNNING",
        "UNDER-VOLTAGE WARNING",
        "OVER-VOLTAGE POWER DOWN",
        "OVER-VOLTAGE WARNNING",
        "*PSREADY",
        "*PSREADYDS",
        "PB DONE",
        "SMS DONE",
    }
)
_VENDOR_FINALS = frozenset({"COMMAND NOT SUPPORT", "TOO MANY PARAMETERS", "+CMS ERROR", "ABORTED"})
_DIAL_FINALS = frozenset({"NO CARRIER", "NO DIALTONE", "BUSY", "NO ANSWER"})
_ERR_RE = re.compile(r"^\+(CMS|CME) ERROR:\s*(.*)$", re.IGNORECASE)
_CODE_RE = re.compile(r"^([+^*$%#][A-Za-z0-9_]+|[A-Za-z][A-Za-z0-9_]*):\s?(.*)$")
_HEX_RE = re.compile(r"^[0-9A-Fa-f]+$")
_REPLY_PREFIX_RE = re.compile(r"^AT([+^*$%#][A-Za-z0-9_]+)", re.IGNORECASE)


def reply_prefix(command: str) -> str | None:
    """The information-response prefix of an extended command: `AT+CPIN?` -> `+CPIN`."""
    m = _REPLY_PREFIX_RE.match(command.strip())
    return m.group(1).upper() if m else None


def _split_code(line: str) -> tuple[str, str] | None:
    m = _CODE_RE.match(line)
    if m is None:
        return None
    return m.group(1).upper(), m.group(2).strip()


def _urc_name_and_slot(name: str, args: str = "") -> tuple[str, int]:
    # SIM800C-DS names its SIM switch command +CDSDS, which is also "+CDS, SIM 2": only a bare
    # length argument makes it a status report.
    if name == "+CDSDS" and not is_digits(args.strip()):
        return name, 0
    if name.endswith("DS") and name[:-2] in _DS_CAPABLE:
        return name[:-2], 1
    return name, 0


@dataclass
class _Expect:
    command: str
    prefixes: frozenset[str]
    bare: bool
    prompt: bool
    echoes: set[str] = field(default_factory=set)


class AtDecoder:
    """Incremental decoder. Call `feed(bytes)` and act on the returned events in order."""

    def __init__(self, *, max_line: int = 4096) -> None:
        self._buf = bytearray()
        self._max_line = max_line
        self._discarding = False  # inside an over-long line: drop bytes until the next line end
        self._expect: _Expect | None = None
        self._pending: tuple[str, str, str, int] | None = None  # (kind, name/line, args, slot)
        self._skip_space = False  # a prompt `>` was seen; swallow the following space

    # -- driver-facing state -------------------------------------------------------------

    def begin(
        self,
        command: str,
        *,
        prefixes: tuple[str, ...] | None = None,
        bare: bool = False,
        prompt: bool = False,
    ) -> None:
        """Declare the command in flight. `prefixes` default to the command's own (+CPIN for
        AT+CPIN?), plus its `DS` twin; `bare` accepts unprefixed lines (AT+CGSN, ATI, ...)."""
        pfx = set()
        for p in prefixes if prefixes is not None else ((reply_prefix(command) or ""),):
            if p:
                p = p.rstrip(":").upper()
                pfx.add(p)
                pfx.add(p + "DS")
        self._expect = _Expect(
            command=command.strip(),
            prefixes=frozenset(pfx),
            bare=bare or not pfx,
            prompt=prompt,
            echoes={command.strip().upper()},
        )

    def expect_echo(self, text: str) -> None:
        """A line the modem may echo back (the PDU written after the prompt)."""
        if self._expect is not None:
            self._expect.echoes.add(text.strip().upper())

    def end(self) -> None:
        self._expect = None
        self._skip_space = False

    @property
    def in_flight(self) -> str | None:
        return self._expect.command if self._expect else None

    def reset(self) -> list[AtEvent]:
        """Forget partial input (after the port was reopened). Returns junk for what was lost."""
        out: list[AtEvent] = []
        if self._buf:
            out.append(Junk(bytes(self._buf), "discarded on reset"))
        self._buf.clear()
        self._discarding = False
        self._pending = None
        self.end()
        return out

    # -- decoding ------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[AtEvent]:
        """Decode a chunk. The text of a line is taken in one slice up to its CR or LF; only
        line ends and the bytes where something may happen (a line's first byte: noise or a
        `>` prompt; the space after a prompt) go through `_byte` one by one. A byte-by-byte
        loop over all of it cost about 0.4 us per byte, some 120 bytes per SMS."""
        out: list[AtEvent] = []
        i, n = 0, len(data)
        buf = self._buf
        while i < n:
            b = data[i]
            if b == 0x0D or b == 0x0A:  # as in _byte, inline: about 14 line ends per SMS
                if self._discarding:
                    self._discarding = False
                else:
                    if buf:
                        raw = bytes(buf)
                        buf.clear()
                        self._line(raw, out)
                    self._skip_space = False
                i += 1
                continue
            if self._skip_space or (not buf and b in _FIRST_BYTE):
                self._byte(b, out)
                i += 1
                continue
            end = _line_end(data, i, n)
            if not self._discarding:
                buf += data[i:end]
                if len(buf) > self._max_line:
                    out.append(Junk(bytes(buf[:64]), f"line longer than {self._max_line} bytes"))
                    buf.clear()
                    self._discarding = True
            i = end
        return out

    def _byte(self, b: int, out: list[AtEvent]) -> None:
        if b in (0x0D, 0x0A):
            if self._discarding:
                self._discarding = False
                return
            if self._buf:
                raw = bytes(self._buf)
                self._buf.clear()
                self._line(raw, out)
            self._skip_space = False
            return
        if self._discarding:
            return
        if b in (0x00, 0xFF) and not self._buf:
            return  # power-on noise
        if self._skip_space:
            self._skip_space = False
            if b == 0x20:
                return
        self._buf.append(b)
        if (
            self._buf == b">"
            and self._expect is not None
            and self._expect.prompt
            and self._pending is None
        ):
            self._buf.clear()
            self._skip_space = True
            self._expect.prompt = False  # one prompt per command
            out.append(Prompt())
            return
        if len(self._buf) > self._max_line:
            out.append(Junk(bytes(self._buf[:64]), f"line longer than {self._max_line} bytes"))
            self._buf.clear()
            self._discarding = True

    def _line(self, raw: bytes, out: list[AtEvent]) -> None:
        # Ctrl-Z/ESC come back in the echo of a PDU; they never belong to a reply.
        raw = raw.replace(b"\x1a", b"").replace(b"\x1b", b"")
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            # Replies are ASCII; 8-bit bytes appear only inside quoted strings of a coded line
            # (an operator name in a vendor charset). Anything else is line noise.
            text = raw.decode("latin-1")
            coded = _CODE_RE.match(text.strip()) is not None
            if not coded or sum(1 for c in text if ord(c) > 0x7E) * 4 > len(text):
                self._flush_pending(out)
                out.append(Junk(raw, "not text"))
                return
        if _CONTROL_RE.search(text) is not None:
            self._flush_pending(out)
            out.append(Junk(raw, "control characters"))
            return
        line = text.strip()
        if not line:
            return
        if self._pending is not None:
            if _HEX_RE.match(line) and len(line) % 2 == 0:
                kind, name, args, slot = self._pending
                self._pending = None
                if kind == "urc":
                    out.append(Urc(name, args, f"{name}: {args}", slot, data=line.upper()))
                elif kind == "cdsds":  # a PDU followed: it was SIM 2's status report
                    out.append(Urc("+CDS", args, name, 1, data=line.upper()))
                else:
                    out.append(Info(name, data=line.upper()))
                return
            self._flush_pending(out)
        self._classify(line, out)

    def _flush_pending(self, out: list[AtEvent]) -> None:
        if self._pending is None:
            return
        kind, name, args, slot = self._pending
        self._pending = None
        if kind == "urc":
            out.append(Urc(name, args, f"{name}: {args}", slot, data=None))
        elif kind == "cdsds":  # no PDU followed: the reply to AT+CDSDS ("+CDSDS: 2")
            out.append(Info(name))
        else:
            out.append(Info(name, data=None))

    def _classify(self, line: str, out: list[AtEvent]) -> None:
        upper = line.upper()
        exp = self._expect
        if exp is not None and upper in exp.echoes:
            out.append(Echo(line))
            return
        if upper == "OK":
            out.append(Final(FinalKind.OK, text=line))
            return
        if upper == "ERROR":
            out.append(Final(FinalKind.ERROR, text=line))
            return
        m = _ERR_RE.match(line)
        if m:
            kind = FinalKind.CMS_ERROR if m.group(1).upper() == "CMS" else FinalKind.CME_ERROR
            arg = m.group(2).strip()
            out.append(Final(kind, parse_uint(arg), line))
            return
        if upper in _VENDOR_FINALS:
            out.append(Final(FinalKind.VENDOR_ERROR, text=line))
            return
        dialing = exp is not None and exp.command.upper().startswith(("ATD", "ATA"))
        if upper in _DIAL_FINALS and dialing:
            out.append(Final(FinalKind.NO_CARRIER, text=line))
            return
        split = _split_code(line)
        if split is not None:
            name, args = split
            if exp is not None and name in exp.prefixes:
                if name == "+CDSDS" and _looks_like_pdu_header("+CDS", args):
                    # "+CDSDS: 25" is SIM 2's status report header, or (some firmware) the
                    # bare-slot reply to the AT+CDSDS in flight; only the next line tells.
                    self._pending = ("cdsds", line, args, 1)
                    return
                if name.removesuffix("DS") in _INFO_WITH_PDU or name in _INFO_WITH_PDU:
                    self._pending = ("info", line, "", 0)
                else:
                    out.append(Info(line))
                return
            if name.startswith(("+", "^", "*", "$", "%", "#")):
                uname, slot = _urc_name_and_slot(name, args)
                if uname in _URC_WITH_PDU and _looks_like_pdu_header(uname, args):
                    self._pending = ("urc", uname, args, slot)
                    return
                out.append(Urc(uname, args, line, slot))
                return
        if upper in _BARE_URCS:
            uname, slot = _urc_name_and_slot(upper)
            out.append(Urc(uname, "", line, slot))
            return
        if exp is not None and exp.bare:
            out.append(Info(line))
            return
        if upper.startswith("AT"):
            out.append(Echo(line))  # echo of an earlier command, seen after a reset
            return
        out.append(Urc("", line, line))


# Control characters other than TAB: such a line is noise, never a reply.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f]")
# A line's first bytes that `_byte` must see one by one: power-on noise and the `>` prompt.
_FIRST_BYTE = frozenset((0x00, 0xFF, 0x3E))


def _line_end(data: bytes, start: int, n: int) -> int:
    """The index of the first CR or LF at or after `start`; `n` if there is none."""
    cr = data.find(b"\r", start)
    lf = data.find(b"\n", start)
    if cr < 0:
        return n if lf < 0 else lf
    return cr if lf < 0 or cr < lf else lf


_CMT_HEADER_RE = re.compile(r'^("[^"]*"|[^,"]*),\s*[0-9]+$')


def _looks_like_pdu_header(name: str, args: str) -> bool:
    # PDU mode: "+CMT: [<alpha>],<length>" and "+CDS: <length>". Text mode carries fields
    # instead (never configured by us), and SIM800C-DS answers "+CDSDS: SIM1,1,0" about the
    # active SIM, which must not swallow the next line as a PDU.
    if name == "+CDS":
        return is_digits(args.strip())
    return _CMT_HEADER_RE.match(args.strip()) is not None
