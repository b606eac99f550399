"""Line noise in AT replies: 8-bit bytes pass the decoder as Latin-1 characters, and `²` (0xB2),
`³` (0xB3) and `¹` (0xB9) are digits to `str.isdigit()` but not to `int()`. Every reply parser
reads numbers as ASCII digits only and takes anything else for unknown, never ValueError."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from simhive.agent.modem.at import AtDecoder, Info, Urc
from simhive.agent.modem.atinfo import csq_to_dbm, parse_cops, parse_creg
from simhive.agent.modem.atinit import parse_ranges
from simhive.agent.modem.atmodem import _parse_mr
from simhive.agent.modem.base import UNKNOWN_REFERENCE
from simhive.agent.modem.countries import split_imsi, split_operator_code
from simhive.agent.modem.digits import is_digits, parse_uint
from simhive.agent.modem.dualsim import parse_active
from simhive.agent.modem.inbox import _stat_of_cmgr, parse_listing
from simhive.agent.modem.profiles import CDSDS, QDSIM
from tests.modem.test_atmodem import Rig

NOISE = ["\xb2", "\xb3", "\xb9", "1\xb2", "\xb92", " \xb3 ", "\u0663", "1_0", "+1", "-1", "\xbd"]


def test_helper_takes_ascii_digits_only() -> None:
    assert parse_uint(" 42 ") == 42 and parse_uint("007") == 7
    assert parse_uint("256", maximum=255) is None and parse_uint("255", maximum=255) == 255
    assert parse_uint("9" * 19) is None  # longer than any reply field
    assert parse_uint("9" * 5000) is None  # int() would refuse it with ValueError
    assert is_digits("0123456789") and not is_digits("") and not is_digits("1 2")
    for text in NOISE:
        assert parse_uint(text) is None, text
        assert not is_digits(text), text


# (parser, noisy argument text, what it gives for noise)
CASES: list[tuple[str, Callable[[str], Any], str, Any]] = [
    ("csq", csq_to_dbm, "{},99", None),
    ("creg read", lambda a: parse_creg(a).stat, '2,{},"4CA","81DE"', None),
    ("creg urc", lambda a: parse_creg(a, solicited=False).stat, '{},"4CA","81DE"', None),
    ("creg stat only", lambda a: parse_creg(a).stat, "{}", None),
    ("cmgs mr", _parse_mr, "{}", None),
    ("cmgs mr with scts", _parse_mr, '{},"26/11/22,04:34:05+04"', None),
    ("cmgr stat", _stat_of_cmgr, "{},,23", None),
    ("cdsds active", lambda a: parse_active(CDSDS, a), "{}", None),
    ("qdsim active", lambda a: parse_active(QDSIM, a), "{}", None),
    ("cdsds sim word", lambda a: parse_active(CDSDS, a), "SIM{},1,0", None),
    ("cops format", lambda a: parse_cops(a)[0], '0,{},"26201",7', None),
    ("cnmi ranges", lambda a: parse_ranges(a)[0], "({})", set()),
    ("cnmi range pair", lambda a: parse_ranges(a)[0], "({}-3)", set()),
    ("operator code", split_operator_code, "2620{}", None),
    ("imsi", split_imsi, "26201123456789{}", None),
]


@pytest.mark.parametrize(("name", "parse", "template", "unknown"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("noise", NOISE)
def test_noise_is_unknown_not_an_exception(
    name: str, parse: Callable[[str], Any], template: str, unknown: Any, noise: str
) -> None:
    assert parse(template.format(noise)) == unknown


@pytest.mark.parametrize(("name", "parse", "template", "unknown"), CASES, ids=[c[0] for c in CASES])
def test_clean_digits_still_parse(
    name: str, parse: Callable[[str], Any], template: str, unknown: Any
) -> None:
    assert parse(template.format("1")) not in (None, set())


def test_clean_values() -> None:
    assert csq_to_dbm("21,99") == -71 and csq_to_dbm("32,99") is None
    assert (
        parse_creg('2,5,"4CA","81DE"').roaming and parse_creg('1,"4CA"', solicited=False).stat == 1
    )
    assert _parse_mr("17") == 17 and _parse_mr("255") == 255 and _parse_mr("256") is None
    assert _parse_mr('3,"26/11/22"') == 3 and _parse_mr("") is None and _parse_mr(None) is None
    assert parse_active(CDSDS, "SIM2,1,0") == 1 and parse_active(QDSIM, "1") == 1
    assert parse_active(CDSDS, "SIM9,1,0") is None and parse_active(CDSDS, "SIM0") is None
    assert parse_ranges("(0-2),(1,3)") == [{0, 1, 2}, {1, 3}]


def test_cmgl_listing_skips_a_noisy_header() -> None:
    listing: list[tuple[str, str | None]] = [
        ("1,\xb2,,23", "00"),
        ("\xb3,1,,23", "00"),
        ("4,1,,23", "AB"),
    ]
    assert [(m.index, m.stat) for m in parse_listing(listing, "SM")] == [(4, 1)]


def test_noisy_report_header_does_not_take_the_next_line_as_its_pdu() -> None:
    # `+CDS: <length>` announces a PDU line; `+CDS: ²` announces nothing.
    events = AtDecoder().feed(b"\r\n+CDS: \xb2\r\n\r\n0011AB\r\n")
    assert Urc("+CDS", "\xb2", "+CDS: \xb2") in events
    assert not any(isinstance(e, Urc) and e.data for e in events)


def test_noisy_cmgs_reference_reaches_the_parser_as_text() -> None:
    # The premise of the fix: 0xB2 is not junk to the decoder, it arrives as "²".
    d = AtDecoder()
    d.begin("AT+CMGS=23", prompt=True)
    assert d.feed(b"\r\n+CMGS: \xb2\r\n") == [Info("+CMGS: \xb2")]


@pytest.mark.parametrize("reply", ["+CMGS: \xb2", "+CMGS: \xb9\xb3", "+CMGS: 300"])
async def test_submit_with_an_unreadable_reference_is_sent(reply: str) -> None:
    async with Rig({"<PDU>": reply + "\nOK"}) as r:
        result = await r.modem.send("+491601112233", "Hi")
        assert result.references == [UNKNOWN_REFERENCE]
        assert len(r.fm.submitted) == 1
        # The next submit reads its reference as usual.
        r.fm.replies["<PDU>"] = "+CMGS: {mr}\nOK"
        assert (await r.modem.send("+491601112233", "again")).references == [2]


async def test_noisy_cmti_index_is_ignored_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async with Rig() as r:
        r.fm.urc('+CMTI: "SM",\xb2')
        r.fm.urc('+CMTI: "SM",\xb3\xb9')
        r.fm.deliver("00")  # index 1 holds something, so a wrong read would show
        r.fm.urc('+CMTI: "SM",1\xb2')
        await asyncio.sleep(0.2)  # the URC task handles them
        assert (await r.modem.send("+491601112233", "Hi")).references == [1]
    assert [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR] == []
    assert not any(cmd.startswith("AT+CMGR") for cmd in r.fm.commands)
