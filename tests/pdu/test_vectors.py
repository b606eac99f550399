"""Byte-exact vectors: the verified examples of spec/modems.md and hand-checked 23.040 layouts."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.modem.pdu import (
    Coding,
    Concat,
    Deliver,
    PduError,
    StatusReport,
    decode_incoming,
    decode_submit,
    encode_deliver,
    encode_status_report,
    encode_submit,
    from_hex,
)

SPEC_SUBMIT = "0031000C919461101122330000AA02C834"
SPEC_CDS = "079194710167000006010C91946110112233621122404350006211224043500000"


def test_spec_submit_example_byte_exact() -> None:
    # modems.md section 3: "Hi" to +491601112233, SRR, VP 0xAA (4 days), AT+CMGS=16.
    [part] = encode_submit("+491601112233", "Hi", validity_minutes=4 * 24 * 60)
    assert part.hex == SPEC_SUBMIT
    assert part.tpdu_length == 16
    assert part.coding is Coding.GSM7


def test_default_submit_has_24h_validity_and_report_request() -> None:
    [part] = encode_submit("+491601112233", "Hi")
    assert part.hex == "0031000C919461101122330000A702C834"


def test_submit_without_report_or_validity() -> None:
    [part] = encode_submit("01601112233", "Hi", status_report=False, validity_minutes=None)
    # 0x01 SUBMIT only; national number type 0x81, 11 digits F-padded.
    assert part.hex == "0001000B811006112132F3000002C834"


def test_spec_status_report_example() -> None:
    report = decode_incoming(bytes.fromhex(SPEC_CDS))
    assert report == StatusReport(
        smsc="+491710760000",
        message_reference=1,
        recipient="+491601112233",
        sc_timestamp=datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC),
        discharge_time=datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC),
        status=0,
    )
    ts = datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC)
    rebuilt = encode_status_report(
        1, "+491601112233", 0, sc_timestamp=ts, discharge_time=ts, smsc="+491710760000"
    )
    assert rebuilt.hex().upper() == SPEC_CDS


def test_spec_submit_decodes() -> None:
    sub = decode_submit(bytes.fromhex(SPEC_SUBMIT))
    assert sub.destination == "+491601112233"
    assert sub.text == "Hi"
    assert sub.status_report is True
    assert sub.validity_minutes == 4 * 24 * 60
    assert sub.concat is None
    assert sub.user_data_header == b""


def test_negative_timezone_offset() -> None:
    # -05:00 = 20 quarter hours: tens digit 2 with the sign bit (0x08) -> nibble A, units 0.
    ts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    pdu = encode_deliver("+15551234567", "x", sc_timestamp=ts)
    assert pdu.hex().upper() == "00040B915155214365F700006210203040500A0178"
    msg = decode_incoming(pdu)
    assert isinstance(msg, Deliver)
    assert msg.sc_timestamp == ts
    assert msg.sc_timestamp.utcoffset() == timedelta(hours=-5)


def test_concatenated_gsm7_parts_with_fill_bits() -> None:
    parts = encode_submit("+491601112233", "x" * 161 + "€", concat_reference=0x1F)
    assert len(parts) == 2
    # UDH 050003 1F 02 01, then one fill bit: 'x' (0x78) << 1 = 0xF0 in the first text octet.
    assert parts[0].hex.startswith("0071000C919461101122330000A7A00500031F0201F0")
    assert parts[1].hex == "0071000C919461101122330000A7110500031F0202F0783C1E8FC7E33765"


def test_bad_destination_numbers_raise() -> None:
    for bad in ["", "+", "+49 160", "49-160", "abc", "+" + "1" * 21, '1"2']:
        with pytest.raises(PduError):
            encode_submit(bad, "Hi")


def test_from_hex() -> None:
    assert from_hex(" 00 ".strip()) == b"\x00"
    with pytest.raises(PduError):
        from_hex("0G")


def test_deliver_with_concat_header() -> None:
    ts = datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC)
    pdu = encode_deliver(
        "+491601112233", "ab", sc_timestamp=ts, concat=Concat(258, 3, 2), ref16=True
    )
    msg = decode_incoming(pdu)
    assert isinstance(msg, Deliver)
    assert msg.concat == Concat(258, 3, 2)
    assert msg.user_data_header == bytes.fromhex("06080401020302")
    assert msg.text == "ab"
