"""Message text in SMPP: codings, packed and unpacked GSM-7, UDH and sar_* concatenation, SMPP
times, and the receipt text."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simhive.agent.modem import gsm7
from simhive.server.smpp import times
from simhive.server.smpp.deliver import deliver_pdu, receipt_text
from simhive.server.smpp.pdu import PduError, Status, Tag
from simhive.server.smpp.text import (
    Concat,
    body_fields,
    decode_text,
    encode_text,
    message_text,
    sar_tlvs,
)
from simhive.server.store.sqlite_smpp import OutboxRow

GSM_CHARS = sorted(set(gsm7.DEFAULT_TABLE) - {"\x1b"}) + ["€", "["]
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS))


@given(gsm_text)
def test_unpacked_gsm7_round_trips(text: str) -> None:
    coding, data = encode_text(text)
    assert coding == 0
    assert decode_text(data, 0) == text


@given(gsm_text.filter(lambda t: any(gsm7.encode(t))))
def test_packed_gsm7_is_recognised(text: str) -> None:
    septets = gsm7.encode(text)
    packed = gsm7.pack(septets)
    if all(b < 0x80 for b in packed):
        return  # indistinguishable from unpacked septets; docs/smpp.md says clients send unpacked
    if len(septets) % 8 == 0 and septets[-1] == 0:
        return  # a last '@' in 8n septets looks like the 7 fill bits (23.038 pads with CR)
    assert decode_text(packed, 0) == text


def test_packed_gsm7_examples() -> None:
    assert decode_text(gsm7.pack(gsm7.encode("hellohello")), 0) == "hellohello"
    # Seven septets in seven octets leave 7 spare bits that must not become a trailing '@'.
    assert decode_text(gsm7.pack(gsm7.encode("1234567")), 0) == "1234567"


def test_packed_gsm7_after_a_udh_skips_the_fill_bits() -> None:
    udh = bytes([5, 0, 3, 9, 2, 1])
    septets = gsm7.encode("Hello world from simhive")
    fill = (7 - (len(udh) * 8) % 7) % 7
    data = udh + gsm7.pack(septets, fill)
    got = message_text(data, None, 0x40, 0)
    assert got.text == "Hello world from simhive"
    assert got.concat == Concat(9, 2, 1)


def test_codings() -> None:
    assert message_text("Grüße €".encode("utf-16-be"), None, 0, 8).text == "Grüße €"
    assert message_text("Grüße".encode("latin-1"), None, 0, 3).text == "Grüße"
    assert message_text(b"plain", None, 0, 1).text == "plain"
    emoji = "ok \U0001f600"  # a surrogate pair in UCS-2 / UTF-16
    assert message_text(emoji.encode("utf-16-be"), None, 0, 8).text == emoji
    for bad, coding in ((b"\x00", 8), (b"\xff", 1), (b"x", 4)):
        with pytest.raises(PduError) as err:
            message_text(bad, None, 0, coding)
        assert err.value.status == Status.RSUBMITFAIL


def test_concatenation_by_udh_16_bit_ref_and_sar() -> None:
    udh16 = bytes([6, 8, 4, 0x12, 0x34, 3, 2])
    assert message_text(udh16 + b"abc", None, 0x40, 0).concat == Concat(0x1234, 3, 2)
    sar = (300, 3, 3)
    assert message_text(b"abc", None, 0, 0, sar) == message_text(b"abc", None, 0, 0, sar)
    assert message_text(b"abc", None, 0, 0, sar).concat == Concat(300, 3, 3)
    tlvs = dict(sar_tlvs(Concat(300, 3, 3)))
    assert int.from_bytes(tlvs[Tag.SAR_MSG_REF_NUM], "big") == 300
    # One part of one is no concatenation at all.
    assert message_text(bytes([5, 0, 3, 1, 1, 1]) + b"x", None, 0x40, 0).concat is None


@pytest.mark.parametrize(
    "udh",
    [b"", bytes([9, 0, 3]), bytes([4, 0, 3, 1, 2]), bytes([5, 0, 3, 1, 2, 3, 4])[:1]],
)
def test_bad_udh_is_refused(udh: bytes) -> None:
    with pytest.raises(PduError) as err:
        message_text(udh, None, 0x40, 0)
    assert err.value.status in (Status.RINVESMCLASS, Status.RSUBMITFAIL)


def test_part_numbers_must_make_sense() -> None:
    with pytest.raises(PduError):
        message_text(b"x", None, 0, 0, (1, 2, 3))
    with pytest.raises(PduError):
        message_text(b"x", None, 0, 0, (1, None, None))


def test_message_payload_instead_of_short_message() -> None:
    long = "x" * 600
    assert message_text(b"", long.encode("latin-1"), 0, 3).text == long
    with pytest.raises(PduError):
        message_text(b"x", b"y", 0, 3)
    fields, tlvs = body_fields(long)
    assert fields["short_message"] == b"" and dict(tlvs)[Tag.MESSAGE_PAYLOAD] == long.encode()
    fields, tlvs = body_fields("Привет")
    assert fields["data_coding"] == 8 and not tlvs


def test_smpp_times() -> None:
    now = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() * 1_000_000)
    assert times.parse("", now) is None
    noon_utc = int(dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC).timestamp() * 1_000_000)
    assert times.parse("260304120000000+", now) == noon_utc
    assert times.parse("260304140000008+", now) == noon_utc  # 14:00 at UTC+2 (8 quarters)
    assert times.parse("260304100000008-", now) == noon_utc
    assert times.parse("000001020304000R", now) == now + (86400 + 2 * 3600 + 3 * 60 + 4) * 10**6
    for bad in ("26030412", "260399120000000+", "260304120000049+", "26030412000000X+"):
        with pytest.raises(times.TimeError):
            times.parse(bad, now)
    assert times.absolute(noon_utc) == "260304120000000+"
    assert times.receipt_date(noon_utc) == "2603041200"


def _row(status: int, **extra: object) -> OutboxRow:
    t = int(dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC).timestamp() * 1_000_000)
    values: dict[str, object] = {
        "id": 1, "account_id": 1, "kind": "receipt", "sms_id": 17, "smpp_id": "17",
        "status": status, "done": t + 60 * 10**6, "body": "Grüße aus dem Büro, bis später",
        "sendto": "+4915752982212", "submitted": t, "source_addr": "crm",
        "dest_addr": "+4915752982212",
    }  # fmt: skip
    values.update(extra)
    return OutboxRow(**values)  # type: ignore[arg-type]


def test_receipt_text_is_the_standard_format() -> None:
    assert receipt_text(_row(7)) == (
        "id:17 sub:001 dlvrd:001 submit date:2603041200 done date:2603041201 stat:DELIVRD"
        " err:000 text:Gr??e aus dem B?ro, "
    )
    assert "dlvrd:000" in receipt_text(_row(8)) and "stat:UNDELIV err:008" in receipt_text(_row(8))
    assert "stat:REJECTD err:100" in receipt_text(_row(100))


def test_receipt_pdu_carries_the_tlvs() -> None:
    pdu = deliver_pdu(_row(7, smpp_id="p5"), 3)
    assert pdu.num("esm_class") == 4
    assert pdu.tlv(Tag.RECEIPTED_MESSAGE_ID) == b"p5\0"
    assert pdu.tlv_int(Tag.MESSAGE_STATE) == 2
    assert (pdu.text("source_addr"), pdu.num("source_addr_ton")) == ("4915752982212", 1)
    assert (pdu.text("destination_addr"), pdu.num("dest_addr_ton")) == ("crm", 0)
