"""Property: no client bytes break the AT engine; ESC CR and a command always get an answer."""

from __future__ import annotations

import asyncio
import logging
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from .harness import Rig

# Fragments a confused client or line noise produces, mixed with arbitrary bytes.
FRAGMENTS = [
    b"AT",
    b"\r",
    b"\n",
    b"\x1a",
    b"\x1b",
    b"\x08",
    b"AT+CMGS=",
    b"AT+CMGW",
    b"AT+CMGF=1",
    b'AT+CMGS="+4930"',
    b"AT+CPMS=",
    b'"SM"',
    b",",
    b"AT+CNMI=2,2,0,1,0",
    b"ATE0",
    b"AT+CSCS=",
    b'"UCS2"',
    b"0011000",
    b"FFFF",
    b"AT+CMGR=",
    b"AT+CMGD=1,4",
    b"AT+CFUN=0",
    b";",
    b"=?",
    b"?",
]


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _run(chunks: list[bytes]) -> str:
    rig = Rig()
    modem = rig.add("sim800c")
    rig.add()
    await rig.start()
    try:
        port = rig.port("m1")
        for chunk in chunks:
            port.session.feed(chunk)
            await asyncio.sleep(0)
        # ESC leaves any prompt, CR ends any half line; then a command that must be answered
        port.session.feed(b"\x1b\rAT+CGSN\r")
        out = await port.wire.expect(f"{modem.imei}\r\n\r\nOK\r\n".encode(), 10)
        return out.decode("latin-1")
    finally:
        await rig.stop()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=40)), max_size=30))
def test_engine_survives_any_input(chunks: list[bytes]) -> None:
    errors = _Errors()
    logger = logging.getLogger("simhive.hardware.emulator")
    logger.addHandler(errors)
    try:
        assert "OK" in asyncio.run(_run(chunks))
    finally:
        logger.removeHandler(errors)
    # bad input gets ERROR from a handler, never an exception caught by the engine's safety net
    assert [r.getMessage() for r in errors.records] == []


ANSWER = re.compile(rb"(\r\n> |\r\n(OK|ERROR|\+CM[ES] ERROR: [^\r]*)\r\n)")
ARGS = [
    "",
    "?",
    "=?",
    "=",
    "=x",
    '="',
    "=1,2,3,4,5,6,7",
    "=-1",
    "=99999999999",
    '=""',
    "=,,",
    '="SM",9',
]


async def _every_command() -> list[str]:
    from simhive.hardware.emulator.engine import COMMANDS

    rig = Rig()
    for profile, dual in (
        ("sim800c-ds", "cdsds"),
        ("quectel-ec25", "qdsim"),
        ("huawei-e173", "none"),
    ):
        rig.add(profile, dual)
    await rig.start()
    answers = []
    try:
        for modem in rig.modems:
            port = rig.port(modem.id)
            await port.cmd("ATE0;+CMEE=1")
            for name in sorted(COMMANDS):
                if name in ("Z", "&F", "D"):
                    continue
                for arg in ARGS:
                    if name[0] not in "+^" and arg.startswith("="):
                        continue
                    port.session.feed(f"AT{name}{arg}\r".encode())
                    out = await port.wire.expect(ANSWER)
                    if out.endswith(b"> "):
                        port.session.feed(b"\x1b")  # leave the prompt
                        await port.wire.expect(b"OK\r\n")
                    answers.append(out.decode("latin-1"))
                    await port.cmd("ATE0;+CMEE=1;+CFUN=1")  # undo a reboot, echo or radio off
    finally:
        await rig.stop()
    return answers


def test_every_command_with_junk_arguments() -> None:
    errors = _Errors()
    logger = logging.getLogger("simhive.hardware.emulator")
    logger.addHandler(errors)
    try:
        answers = asyncio.run(_every_command())
    finally:
        logger.removeHandler(errors)
    assert len(answers) > 300
    assert [r.getMessage() for r in errors.records] == []
