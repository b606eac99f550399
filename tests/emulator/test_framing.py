"""The line editor's fast paths against a per-byte model of the modem (the engine's loops before
they took whole chunks): same line or body, same echo, same rest, for any bytes in any chunks."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.hardware.emulator.framing import MAX_BODY, MAX_LINE, take_body, take_line

from .harness import Rig

CTRL_Z, ESC, CR, LF, BS, DEL = 0x1A, 0x1B, 0x0D, 0x0A, 0x08, 0x7F


def model_line(chunks: list[bytes]) -> tuple[bytes | None, bytes, bytes]:
    """(line or None when no CR came, echo, bytes left after the CR), byte by byte."""
    line, echo = bytearray(), bytearray()
    data = b"".join(chunks)
    for i, b in enumerate(data):
        if b == CR:
            echo.append(b)
            return bytes(line), bytes(echo), data[i + 1 :]
        if b == ESC:
            line.clear()
        elif b == LF or b == 0:
            continue
        elif b in (BS, DEL):
            if line:
                line.pop()
            echo.append(b)
        elif len(line) < MAX_LINE:
            line.append(b)
            echo.append(b)
    return None, bytes(echo), b""


def model_body(chunks: list[bytes], text_mode: bool) -> tuple[bytes | None, bool, bytes, bytes]:
    """(body or None when unfinished, aborted, echo, bytes left after Ctrl-Z/ESC)."""
    body, echo = bytearray(), bytearray()
    data = b"".join(chunks)
    for i, b in enumerate(data):
        if b in (CTRL_Z, ESC):
            return bytes(body), b == ESC, bytes(echo), data[i + 1 :]
        if b in (CR, LF):
            if text_mode and b == CR:
                body.append(LF)
                echo += b"\r\n> "
            continue
        if b in (BS, DEL):
            if body:
                body.pop()
            continue
        if len(body) < MAX_BODY:
            body.append(b)
            echo.append(b)
    return None, False, bytes(echo), b""


def run_line(chunks: list[bytes]) -> tuple[bytes | None, bytes, bytes]:
    line, echo = bytearray(), bytearray()
    for n, chunk in enumerate(chunks):
        end, out = take_line(chunk, line)
        echo += out
        if end >= 0:
            return bytes(line), bytes(echo), chunk[end:] + b"".join(chunks[n + 1 :])
    return None, bytes(echo), b""


def run_body(chunks: list[bytes], text_mode: bool) -> tuple[bytes | None, bool, bytes, bytes]:
    body, echo = bytearray(), bytearray()
    for n, chunk in enumerate(chunks):
        end, out, aborted = take_body(chunk, body, text_mode=text_mode)
        echo += out
        if end >= 0:
            return bytes(body), aborted, bytes(echo), chunk[end:] + b"".join(chunks[n + 1 :])
    return None, False, bytes(echo), b""


# Editing bytes, terminators and plain text, so both paths and their mixes come up often.
PIECES = st.one_of(
    st.sampled_from(
        [b"\r", b"\n", b"\x00", b"\x08", b"\x7f", b"\x1a", b"\x1b", b"AT+CMGS=21", b"0031000D91"]
    ),
    st.binary(max_size=30),
    st.binary(min_size=1, max_size=30).map(lambda b: bytes(c | 0x40 for c in b)),  # no controls
)
CHUNKS = st.lists(st.lists(PIECES, max_size=6).map(b"".join), max_size=8)


@settings(max_examples=400, deadline=None)
@given(CHUNKS)
def test_take_line_matches_the_per_byte_model(chunks: list[bytes]) -> None:
    assert run_line(chunks) == model_line(chunks)


@settings(max_examples=400, deadline=None)
@given(CHUNKS, st.booleans())
def test_take_body_matches_the_per_byte_model(chunks: list[bytes], text_mode: bool) -> None:
    assert run_body(chunks, text_mode) == model_body(chunks, text_mode)


def test_limits_truncate_in_both_paths() -> None:
    # a line filled to the limit in plain chunks: the bytes past it are neither kept nor echoed
    chunks = [b"A" * 1000, b"B" * 1000, b"C" * 100 + b"\rAT"]
    assert run_line(chunks) == model_line(chunks)
    line, echo, rest = run_line(chunks)
    assert line == b"A" * 1000 + b"B" * 1000 + b"C" * (MAX_LINE - 2000)
    assert echo == line + b"\r" and rest == b"AT"
    # backspace as the first byte of a chunk at the limit, then more text
    chunks = [b"A" * MAX_LINE, b"\x08XY\r"]
    assert run_line(chunks) == model_line(chunks) and run_line(chunks)[0] == b"A" * 2047 + b"X"
    body_chunks = [b"0" * 4000, b"1" * 200, b"\x1aAT"]
    assert run_body(body_chunks, False) == model_body(body_chunks, False)
    assert run_body(body_chunks, False)[0] == b"0" * 4000 + b"1" * (MAX_BODY - 4000)


async def test_session_echo_across_chunk_boundaries(rig: Rig) -> None:
    """The session echoes each chunk as it comes, keeps bytes after the CR for the next command,
    and the prompt's body spans chunks."""
    rig.add()
    await rig.start()
    port = rig.port("m1")

    async def feed(*chunks: bytes) -> None:
        for chunk in chunks:
            port.session.feed(chunk)
            await asyncio.sleep(0.01)  # the reader takes each chunk on its own

    await feed(b"\x1b\r")  # Gammu's opener: ESC cancels nothing, CR ends an empty line
    assert port.wire.take() == b"\r"
    await feed(b"AT+CG")
    assert port.wire.take() == b"AT+CG"
    await feed(b"MI\x08I", b"\rAT+CMGF=1\rAT+CM", b"GF?\r")
    out = (await port.wire.expect(b"+CMGF: 1\r\n\r\nOK\r\n")).decode("latin-1")
    assert out.startswith("MI\x08I\r\r\nsimhive\r\n\r\nOK\r\n")
    assert "AT+CMGF=1\r\r\nOK\r\nAT+CMGF?\r\r\n+CMGF: 1" in out
    await feed(b'AT+CMGS="+4930123"\r')
    assert port.wire.take() == b'AT+CMGS="+4930123"\r\r\n> '
    await feed(b"hel", b"lo\x08\x08lp\rtw", b"o\x1aAT\r")
    out = (await port.wire.expect(b"AT\r\r\nOK\r\n")).decode("latin-1")
    # text-mode CR: a new prompt in the echo; backspaces edit silently; AT after Ctrl-Z runs
    assert out.startswith("hellolp\r\n> two\r\n+CMGS: 1\r\n\r\nOK\r\n")
    assert rig.network.submitted[0].text == "hellp\ntwo"
