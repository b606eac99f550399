"""The modem's line editor on received bytes: a command line up to CR, a `> ` body up to Ctrl-Z.

Both take whatever chunk the port delivered and say how much of it they used, so the session can
keep the rest for the next read. Each has a fast path for the common chunk, one without editing
bytes (a whole `AT+CMGS=21` or PDU line), handled by C-level slicing and one regex search
instead of a Python loop per byte; any chunk with an editing byte goes through the byte loop,
which defines the behaviour (tests/emulator/test_framing.py holds both to a per-byte model).
"""

from __future__ import annotations

import re

CTRL_Z, ESC, CR, LF, BS, DEL = 0x1A, 0x1B, 0x0D, 0x0A, 0x08, 0x7F
MAX_LINE = 2048  # longer command lines are truncated, as a modem's line buffer would
MAX_BODY = 4096  # a 176-octet PDU is 352 hex characters; text mode allows some more

_LINE_EDIT = re.compile(rb"[\x00\n\x08\x1b\x7f]")  # bytes the command line does not just append
_BODY_END = re.compile(rb"[\x1a\x1b]")
_BODY_EDIT = re.compile(rb"[\r\n\x08\x7f]")


def take_line(chunk: bytes, line: bytearray) -> tuple[int, bytearray]:
    """Add `chunk` to the command line being typed; returns (end, echo).

    `end` is the index just after the CR that finished the line, or -1 when the chunk ended
    first. `echo` is what the modem echoes under ATE1: the bytes taken, backspaces and the CR,
    not ESC (which cancels the line), LF or NUL (ignored), nor bytes past MAX_LINE.
    """
    cr = chunk.find(b"\r")
    stop = len(chunk) if cr < 0 else cr
    if _LINE_EDIT.search(chunk, 0, stop) is None and len(line) + stop <= MAX_LINE:
        plain = chunk[:stop]
        line += plain
        echo = bytearray(plain)
    else:
        echo = bytearray()
        for b in chunk[:stop]:
            if b == ESC:
                line.clear()  # a stale prompt or half line is cancelled, not executed
            elif b == LF or b == 0:
                continue
            elif b in (BS, DEL):
                if line:
                    line.pop()
                echo.append(b)
            elif len(line) < MAX_LINE:
                line.append(b)
                echo.append(b)
    if cr < 0:
        return -1, echo
    echo.append(CR)
    return cr + 1, echo


def take_body(chunk: bytes, body: bytearray, *, text_mode: bool) -> tuple[int, bytearray, bool]:
    """Add `chunk` to the text or PDU after the `> ` prompt; returns (end, echo, aborted).

    `end` is the index just after the Ctrl-Z (send) or ESC (abort, `aborted` True) that ended
    the body, or -1 when the chunk ended first. CR and LF are dropped, except that a CR in text
    mode is a line break: LF in the body and a new prompt in the echo. Backspace edits silently.
    """
    m = _BODY_END.search(chunk)
    stop = len(chunk) if m is None else m.start()
    if _BODY_EDIT.search(chunk, 0, stop) is None and len(body) + stop <= MAX_BODY:
        plain = chunk[:stop]
        body += plain
        echo = bytearray(plain)
    else:
        echo = bytearray()
        for b in chunk[:stop]:
            if b in (CR, LF):
                if text_mode and b == CR:
                    body.append(LF)  # a CR in text mode is a line break; prompt again
                    echo += b"\r\n> "
                continue
            if b in (BS, DEL):
                if body:
                    body.pop()
                continue
            if len(body) < MAX_BODY:
                body.append(b)
                echo.append(b)
    if m is None:
        return -1, echo, False
    return stop + 1, echo, chunk[stop] == ESC
