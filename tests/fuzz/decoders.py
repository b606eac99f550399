"""Fuzz targets for what reads bytes from a modem: the PDU decoders, the AT decoder, and every AT
reply parser. Each hypothesis example is widened into a batch of inputs (mutations and
truncations of what hypothesis drew), so a million inputs take minutes, not hours; the counters
say how many inputs each decoder or parser really got.

What counts as unexpected: for the PDU decoders anything but a result or PduError; for the AT
decoder and the reply parsers any exception at all (they answer "unknown", never raise), or a
value outside the range the caller relies on.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from simhive.agent.modem import pdu
from simhive.agent.modem.at import (
    AtDecoder,
    Final,
    FinalKind,
    Info,
    _looks_like_pdu_header,
    reply_prefix,
)
from simhive.agent.modem.atchannel import Response
from simhive.agent.modem.atinfo import (
    _clean,
    csq_to_dbm,
    parse_cnum,
    parse_cops,
    parse_creg,
    parse_iccid,
    parse_spn,
)
from simhive.agent.modem.atinit import choose_cnmi, parse_cpms_options, parse_ranges
from simhive.agent.modem.atmodem import _parse_mr
from simhive.agent.modem.countries import (
    country_for_imsi,
    country_for_operator,
    split_imsi,
    split_operator_code,
)
from simhive.agent.modem.digits import parse_uint
from simhive.agent.modem.dualsim import parse_active
from simhive.agent.modem.errors import cme_error, cms_error
from simhive.agent.modem.gammu_convert import last_modem_code, operator_code
from simhive.agent.modem.inbox import _stat_of_cmgr, parse_listing
from simhive.agent.modem.profiles import CDSDS, QDSIM, detect
from simhive.agent.modem.ussd import UssdError, parse_amount, parse_cusd
from tests.pdu.test_junk import VALID_INCOMING, VALID_SUBMITS

# Inputs per decoder or parser name, over the whole process.
COUNTS: Counter[str] = Counter()

# -- PDU decoders -----------------------------------------------------------------------------

PDU_DECODERS = (
    "decode_incoming",
    "decode_incoming/no-smsc",
    "decode_submit",
    "decode_submit/no-smsc",
)


def _decode_pdu(data: bytes) -> None:
    for name, decode, with_smsc in (
        ("decode_incoming", pdu.decode_incoming, True),
        ("decode_incoming/no-smsc", pdu.decode_incoming, False),
        ("decode_submit", pdu.decode_submit, True),
        ("decode_submit/no-smsc", pdu.decode_submit, False),
    ):
        COUNTS[name] += 1
        try:
            result = decode(data, with_smsc=with_smsc)
        except pdu.PduError as exc:
            assert str(exc), "a PduError needs a message for the log line"
        else:
            assert isinstance(result, pdu.Deliver | pdu.StatusReport | pdu.Submit)


def _mutations(base: bytes, rng: random.Random, count: int) -> list[bytes]:
    """`count` variants of `base`: byte flips, inserted and deleted runs, and truncations."""
    out: list[bytes] = []
    for _ in range(count):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(5)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[pos % len(data)] = rng.randrange(256)
            elif op == 1 and data:
                data[pos % len(data)] ^= 1 << rng.randrange(8)
            elif op == 2:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
            elif op == 3:
                del data[pos : pos + rng.randint(1, 4)]
            else:
                del data[pos:]
        out.append(bytes(data))
    return out


pdu_examples = st.tuples(
    st.one_of(st.sampled_from(VALID_INCOMING + VALID_SUBMITS), st.binary(max_size=180)),
    st.integers(min_value=0, max_value=2**32 - 1),
)


def check_pdu(example: tuple[bytes, int]) -> None:
    base, seed = example
    rng = random.Random(seed)
    for data in [base, *_mutations(base, rng, 40)]:
        _decode_pdu(data)


# -- the AT decoder ---------------------------------------------------------------------------

FRAGMENTS = [
    b"\r\n", b"\r", b"\n", b"\r\r\n", b"OK", b"ERROR", b"> ", b"\x00", b"\xff", b"\x1a",
    b"+CMGS: ", b"+CMS ERROR: ", b"+CME ERROR: ", b"+CDS: ", b"+CMT: ,", b"+CMTI: \"SM\",",
    b"+CSQ: ", b"+CREG: ", b"+CREGDS: ", b"+CMGL: ", b"+CMGR: ", b"+CDSDS: ", b"RING",
    b"0011000C9194", b"FF", b"\xb2", b"\xb3", b"\xb9", b"\xe9", b"1", b"25", b"255", b",",
    b'"', b"SIM1", b"COMMAND NOT SUPPORT", b"NO CARRIER", b"AT+CMGS=23",
]  # fmt: skip
COMMANDS = [None, "AT+CMGS=23", "AT+CSQ", "AT+CREG?", "AT+CMGL=4", "AT+CMGR=1", "AT+CGSN", "ATD1"]

at_examples = st.tuples(
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=24)), max_size=40),
    st.sampled_from(COMMANDS),
    st.integers(min_value=0, max_value=2**32 - 1),
)


def _feed(stream: bytes, command: str | None, rng: random.Random) -> list[Any]:
    d = AtDecoder(max_line=rng.choice((64, 4096)))
    if command is not None:
        d.begin(command, bare=command in ("AT+CGSN", "ATD1"), prompt=command.startswith("AT+CMGS"))
    events: list[Any] = []
    pos = 0
    while pos < len(stream):  # in random pieces: the decoder must not care where reads end
        step = rng.randint(1, 32)
        events += d.feed(stream[pos : pos + step])
        pos += step
    events += d.feed(b"\r\nOK\r\n")
    COUNTS["AtDecoder"] += 1
    # Whatever came before, a complete OK line is recognised as the end of the command.
    assert events and events[-1] == Final(FinalKind.OK, text="OK"), events[-3:]
    return events


def check_at(example: tuple[list[bytes], str | None, int]) -> None:
    chunks, command, seed = example
    rng = random.Random(seed)
    base = b"".join(chunks)
    for stream in [base, *_mutations(base, rng, 12)]:
        events = _feed(stream, command, rng)
        # What the decoder hands on is what the reply parsers get: run them on it too.
        lines = [e for e in events if isinstance(e, Info)]
        if lines:
            final = events[-1]
            _parse_all_response(Response(command or "AT", lines, final))
        for e in events:
            if isinstance(e, Final) and e.code is not None:
                assert e.code >= 0, e
                COUNTS["cms_error"] += 1
                cms_error(e.code)
                COUNTS["cme_error"] += 1
                cme_error(e.code)


# -- AT reply parsers -------------------------------------------------------------------------


def _in(value: int | None, lo: int, hi: int) -> bool:
    return value is None or lo <= value <= hi


def _creg(args: str) -> bool:
    return all(_in(parse_creg(args, solicited=s).stat, 0, 10**18) for s in (True, False))


def _iccid(args: str) -> bool:
    found = (parse_iccid(args), parse_iccid(args, crsm=True))
    return all(v is None or (v.isascii() and v.isdigit() and 18 <= len(v) <= 20) for v in found)


def _country(args: str) -> bool:
    imsi = split_imsi(args)
    if imsi is not None and not (len(imsi[0]) == 3 and 2 <= len(imsi[1]) <= 3):
        return False
    found = (country_for_operator(args), country_for_imsi(args))
    return all(c is None or (len(c) == 2 and c.islower()) for c in found)


def _modem_code(args: str) -> bool:
    code = last_modem_code(args.encode("latin-1", "replace"))
    return code is None or (code[0] in ("CMS", "CME") and code[1] >= 0)


def _cusd(args: str) -> bool:
    try:
        reply = parse_cusd(args)
    except UssdError:  # refused as unreadable: the caller reports that
        return True
    return reply.status >= 0 and (reply.dcs is None or reply.dcs >= 0)


def _amount(args: str) -> bool:
    amount, currency = parse_amount(args)
    return (amount is None or abs(amount) < 10**10) and (currency is None or currency != "")


def _prefix(args: str) -> bool:
    prefix = reply_prefix("AT" + args)
    return prefix is None or prefix[0] in "+^*$%#"


# name -> the parser run on reply arguments (the text after `+XXX:`), true when what it gave is
# in the range its caller relies on. An exception from any of them is a finding.
PARSERS: dict[str, Callable[[str], bool]] = {
    "csq_to_dbm": lambda a: _in(csq_to_dbm(a), -113, -51),
    "parse_creg": _creg,
    "parse_cops": lambda a: _in(parse_cops(a)[0], 0, 10**18),
    "atmodem._parse_mr": lambda a: _in(_parse_mr(a), 0, 255),
    "inbox._stat_of_cmgr": lambda a: _in(_stat_of_cmgr(a), 0, 10**18),
    "inbox.parse_listing": lambda a: all(m.index >= 0 for m in parse_listing([(a, None)], "SM")),
    "dualsim.parse_active": lambda a: (
        _in(parse_active(CDSDS, a), 0, 1) and _in(parse_active(QDSIM, a), 0, 1)
    ),
    "atinit.parse_ranges+choose_cnmi": lambda a: bool(choose_cnmi(parse_ranges(a))[0]),
    "atinit.parse_cpms_options": lambda a: all(
        isinstance(m, str) for g in parse_cpms_options(a) for m in g
    ),
    "parse_iccid": _iccid,
    "parse_spn": lambda a: parse_spn(a) != "",
    "countries": _country,
    "countries.split_*": lambda a: len((split_operator_code(a) or ("262", ""))[0]) == 3,
    "digits.parse_uint": lambda a: _in(parse_uint(a), 0, 10**18),
    "gammu operator_code": lambda a: operator_code(a) in (None, a.replace(" ", "").strip()),
    "gammu last_modem_code": _modem_code,
    "at._looks_like_pdu_header": lambda a: isinstance(
        _looks_like_pdu_header("+CMT", a) or _looks_like_pdu_header("+CDS", a), bool
    ),
    "at.reply_prefix": _prefix,
    "profiles.detect": lambda a: bool(detect(a, a).name),
    "ussd.parse_cusd": _cusd,
    "ussd.parse_amount": _amount,
}
# Parsers that take a whole Response (the decoder's Info lines and final).
RESPONSE_PARSERS = ("parse_cnum", "atinfo._clean")
# Every function above that reads modem text, by qualified name (tests/fuzz checks that each
# parser in agent/modem is among them).
FED = {
    f"{f.__module__}.{f.__name__}"
    for f in (csq_to_dbm, parse_creg, parse_cops, _parse_mr, _stat_of_cmgr, parse_listing,
              parse_active, parse_ranges, choose_cnmi, parse_cpms_options, parse_iccid, parse_spn,
              country_for_operator, country_for_imsi, operator_code, last_modem_code,
              _looks_like_pdu_header, reply_prefix, detect, parse_cnum, _clean, cms_error,
              cme_error, pdu.decode_incoming, pdu.decode_submit, split_operator_code, split_imsi,
              parse_uint, parse_cusd, parse_amount)
}  # fmt: skip


def _parse_all(args: str) -> None:
    for name, parse in PARSERS.items():
        COUNTS[name] += 1
        assert parse(args), f"{name}({args!r}) gave a value out of range"


def _parse_all_response(resp: Response) -> None:
    COUNTS["parse_cnum"] += 1
    number = parse_cnum(resp)
    assert number is None or number.lstrip("+").isdigit(), number
    COUNTS["atinfo._clean"] += 1
    assert "\r" not in _clean(resp, "+CGSN")


# Reply text as the decoder can hand it on: Latin-1, with the fields parsers look for.
PIECES = [
    "0", "1", "2", "5", "21", "99", "255", "256", "4CA", "81DE445", '"', ",", " ", "(", ")", "-",
    "SIM", "SIM1", "SIM 2", "+49151", "145", '"SM"', '"ME"', "26201", "\xb2", "\xb3", "\xb9",
    "\xbd", "\xe9", "\x7f", "F", "98941021436587092143", "CMS Error 41", "CME Error ", "0-2",
]  # fmt: skip
reply_examples = st.tuples(
    st.lists(
        st.one_of(st.sampled_from(PIECES), st.text(st.characters(max_codepoint=0xFF), max_size=6)),
        max_size=16,
    ).map("".join),
    st.integers(min_value=0, max_value=2**32 - 1),
)


def check_replies(example: tuple[str, int]) -> None:
    text, seed = example
    rng = random.Random(seed)
    base = text.encode("latin-1")
    for variant in [base, *_mutations(base, rng, 24)]:
        args = variant.decode("latin-1")
        _parse_all(args)
        line = Info(f"+CNUM: {args}")
        _parse_all_response(Response("AT+CNUM", [line], Final(FinalKind.OK, text="OK")))


# -- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    counted: tuple[str, ...]  # the COUNTS keys this target feeds
    strategy: st.SearchStrategy[Any]
    check: Callable[[Any], None]


TARGETS = [
    Target("pdu", PDU_DECODERS, pdu_examples, check_pdu),
    Target("at-decoder", ("AtDecoder",), at_examples, check_at),
    Target("at-parsers", (*PARSERS, *RESPONSE_PARSERS), reply_examples, check_replies),
]


def run(target: Target, min_inputs: int, examples_per_round: int = 2000) -> int:
    """Run `target` until each of its decoders or parsers got `min_inputs` inputs; returns the
    hypothesis examples it took. A failure raises hypothesis' error with the shrunk example."""

    @settings(
        max_examples=examples_per_round,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(target.strategy)
    def one_round(example: Any) -> None:
        COUNTS["examples:" + target.name] += 1
        target.check(example)

    examples = 0
    while min(COUNTS[name] for name in target.counted) < min_inputs:
        before = COUNTS["examples:" + target.name]
        one_round()
        examples += COUNTS["examples:" + target.name] - before
    return examples
