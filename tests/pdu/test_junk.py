"""Malformed input: truncated and specific malformed PDUs give PduError, nothing else."""

from datetime import UTC, datetime

import pytest

from simhive.agent.modem.pdu import (
    Coding,
    Concat,
    PduError,
    decode_incoming,
    decode_submit,
    encode_deliver,
    encode_status_report,
    encode_submit,
)

TS = datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC)
VALID_INCOMING = [
    encode_deliver("+491601112233", "Hello {world} €", sc_timestamp=TS, smsc="+491710760000"),
    encode_deliver("Vodafone", "Grüße 😀", sc_timestamp=TS, concat=Concat(9, 2, 1)),
    encode_deliver("123", "x" * 152, sc_timestamp=TS, concat=Concat(900, 2, 2), ref16=True),
    encode_status_report(1, "+491601112233", 0, sc_timestamp=TS, discharge_time=TS),
]
VALID_SUBMITS = [
    p.pdu
    for text in ["Hi", "€" * 100, "😀" * 40, "plain text " * 20]
    for p in encode_submit("+491601112233", text)
] + [encode_submit("12", "\x00\xff", coding=Coding.BIT8)[0].pdu]


# Random bytes and mutations of these valid PDUs: the fuzz target in tests/fuzz/decoders.py (a
# short run in the suite, a million inputs with scripts/run-fuzz).


@pytest.mark.parametrize("pdu", VALID_INCOMING)
def test_every_truncation_of_an_incoming_pdu_is_rejected(pdu) -> None:
    decode_incoming(pdu)
    for n in range(len(pdu)):
        with pytest.raises(PduError):
            decode_incoming(pdu[:n])


@pytest.mark.parametrize("pdu", VALID_SUBMITS)
def test_every_truncation_of_a_submit_is_rejected(pdu) -> None:
    decode_submit(pdu)
    for n in range(len(pdu)):
        with pytest.raises(PduError):
            decode_submit(pdu[:n])


@pytest.mark.parametrize(
    ("hex_pdu", "reason"),
    [
        ("", "truncated"),
        ("00", "truncated"),
        ("0001", "SMS-SUBMIT-REPORT"),
        ("0003", "reserved"),
        # DELIVER whose SCTS month is 13.
        ("0004039121F300006231221043500002C834", "not a valid date"),
        # DELIVER with a non-decimal SCTS digit.
        ("0004039121F30000F211221043500002C834", "non-decimal"),
        # UDHI set, UDH length 0x20 runs past the 8-bit user data.
        ("0044039121F300046211224043500003200003", "header longer"),
        # UDHI set, information element length overruns the header.
        ("0044039121F3000462112240435000060500080102FF", "overruns"),
        # 7-bit, UDHI set: UDL 8 septets fill 7 octets, but the header claims 50 octets.
        ("0044039121F30000621122404350000832000000000000", "header longer"),
        # 7-bit UDL claims 10 septets but carries 2 octets.
        ("0004039121F30000621122404350000AC834", "truncated"),
    ],
)
def test_specific_malformations(hex_pdu, reason) -> None:
    with pytest.raises(PduError, match=reason):
        decode_incoming(bytes.fromhex(hex_pdu))


def test_non_bytes_input() -> None:
    with pytest.raises(PduError):
        decode_incoming("0011")  # type: ignore[arg-type]  # callers pass hex by mistake


def test_submit_instead_of_deliver_is_named() -> None:
    with pytest.raises(PduError, match="SUBMIT-REPORT"):
        decode_incoming(VALID_SUBMITS[0])


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"text": "€", "coding": Coding.BIT8}, "latin-1"),
        ({"text": "Ж", "coding": Coding.GSM7}, "GSM 7-bit"),
        ({"text": "\ud83d", "coding": Coding.UCS2}, "surrogate"),
        ({"text": "x" * (153 * 255 + 1)}, "at most 255"),
        ({"text": "xx" * 100, "concat_reference": 256}, "reference"),
        ({"text": "xx" * 100, "concat_reference": 65536, "ref16": True}, "reference"),
        ({"text": "x", "validity_minutes": 0}, "validity"),
    ],
)
def test_encode_submit_rejects_bad_input(kwargs, reason) -> None:
    with pytest.raises(PduError, match=reason):
        encode_submit("+4912345", **kwargs)


def test_encode_deliver_rejects_bad_input() -> None:
    with pytest.raises(PduError, match="aware"):
        encode_deliver("+49", "x", sc_timestamp=datetime(2026, 1, 1))
    with pytest.raises(PduError, match="one gsm7 part"):
        encode_deliver("+49", "x" * 161, sc_timestamp=TS)
    with pytest.raises(PduError, match="11 septets"):
        encode_deliver("TwelveChars!", "x", sc_timestamp=TS)
    with pytest.raises(PduError, match="part 3 of 2"):
        encode_deliver("+49", "x", sc_timestamp=TS, concat=Concat(1, 2, 3))
    with pytest.raises(PduError, match="year"):
        encode_deliver("+49", "x", sc_timestamp=datetime(1999, 1, 1, tzinfo=UTC))
    with pytest.raises(PduError, match="0-255"):
        encode_status_report(256, "+49", 0, sc_timestamp=TS, discharge_time=TS)
