"""V.250 command-line syntax and AT final results: splitting a line into commands, parsing one
command into name, form and arguments, and rendering +CME/+CMS errors per AT+CMEE.

Pure functions and small types, no I/O; engine.py runs them on a port.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Texts for AT+CMEE=2 (27.007 section 9.2).
CME_TEXT = {
    0: "phone failure",
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    16: "incorrect password",
    21: "invalid index",
    30: "no network service",
    100: "unknown",
}


class AtError(Exception):
    def render(self, cmee: int) -> str:
        return "ERROR"


class PlainError(AtError):
    pass


class CmeError(AtError):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def render(self, cmee: int) -> str:
        if cmee == 1:
            return f"+CME ERROR: {self.code}"
        if cmee == 2:
            return f"+CME ERROR: {CME_TEXT.get(self.code, str(self.code))}"
        return "ERROR"


class CmsError(AtError):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def render(self, cmee: int) -> str:
        return f"+CMS ERROR: {self.code}" if cmee else "ERROR"


class NoFinal(Exception):
    """Answer these lines and no final result code (Wavecom's AT+CPIN?)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines)
        self.lines = lines


class Kind(enum.Enum):
    EXEC = "exec"  # AT+CSQ
    READ = "read"  # AT+CREG?
    TEST = "test"  # AT+CNMI=?
    SET = "set"  # AT+CMGF=0, ATE1


@dataclass(frozen=True)
class Call:
    name: str  # upper-case: "+CMGS", "E", "^CURC", "&W"
    kind: Kind
    raw: str  # text after "=" (or the digits of a basic command)
    text: str  # the sub-command as sent, without "AT"

    @property
    def args(self) -> list[str]:
        return split_args(self.raw)

    def int_arg(self, i: int, default: int | None = None) -> int:
        args = self.args
        if i >= len(args) or args[i] == "":
            if default is None:
                raise CmeError(3) if self.name.startswith("+C") else PlainError()
            return default
        try:
            return int(args[i])
        except ValueError:
            raise PlainError() from None


def split_args(raw: str) -> list[str]:
    """Split `2,"SM","x,y"` into ['2', 'SM', 'x,y']; quotes removed, empty fields kept."""
    if raw == "":
        return []
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in raw:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def split_commands(body: str) -> list[str]:
    """`E0V1+CMEE=1;+CMGF=0` -> ['E0', 'V1', '+CMEE=1', '+CMGF=0'] (V.250 command line)."""
    cmds: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c in " ;":
            i += 1
        elif c in "+^*$%#":
            j, quoted = i + 1, False
            while j < n and (quoted or body[j] != ";"):
                if body[j] == '"':
                    quoted = not quoted
                j += 1
            cmds.append(body[i:j])
            i = j
        elif c == "&" or c.isalpha():
            j = i + (2 if c == "&" else 1)
            if c.upper() == "D":  # ATD takes the rest of the line
                j = n
            elif c.upper() == "S":
                while j < n and "0" <= body[j] <= "9":
                    j += 1
                if body[j : j + 1] == "?":
                    j += 1
                elif body[j : j + 1] == "=":
                    j += 1
                    while j < n and "0" <= body[j] <= "9":
                        j += 1
            else:
                while j < n and "0" <= body[j] <= "9":
                    j += 1
            cmds.append(body[i:j])
            i = j
        else:
            raise PlainError()
    return cmds


def parse_call(text: str) -> Call:
    upper = text.upper()
    if upper[0] in "+^*$%#":
        j = 1
        while j < len(text) and (text[j].isalnum() or text[j] in "_-"):
            j += 1
        name, rest = upper[:j], text[j:]
        if rest == "":
            return Call(name, Kind.EXEC, "", text)
        if rest == "?":
            return Call(name, Kind.READ, "", text)
        if rest == "=?":
            return Call(name, Kind.TEST, "", text)
        if rest.startswith("="):
            return Call(name, Kind.SET, rest[1:], text)
        raise PlainError()
    if upper[0] == "&":
        return Call(upper[:2], Kind.SET if len(text) > 2 else Kind.EXEC, text[2:], text)
    if upper[0] == "S":
        return Call("S", Kind.SET, text[1:], text)
    if upper[0] == "D":
        return Call("D", Kind.SET, text[1:], text)
    return Call(upper[0], Kind.SET if len(text) > 1 else Kind.EXEC, text[1:], text)
