"""GSM 7-bit alphabet, septet packing, timestamps and validity periods, byte by byte.

Packing, timestamp and validity vectors are the ones python-gsmmodem publishes in
test/test_pdu.py (faucamp/python-gsmmodem).
"""

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.agent.modem import gsm7
from simhive.agent.modem.pdu_fields import (
    Reader,
    decode_timestamp,
    encode_timestamp,
    vp_minutes,
    vp_relative,
)

PACKING = [
    ("123", [49, 217, 12]),
    ("12345678", [49, 217, 140, 86, 179, 221, 112]),
    ("123456789", [49, 217, 140, 86, 179, 221, 112, 57]),
    ("Hello World!", [200, 50, 155, 253, 6, 93, 223, 114, 54, 57, 4]),
    ("[{abc}]~", [27, 222, 6, 21, 22, 143, 55, 169, 141, 111, 211, 3]),
    ("{åΦΓΛΩΠΨΣΘ€}", [27, 212, 67, 50, 161, 84, 44, 23, 76, 102, 83, 222, 164, 0]),
    ("a[]{}€", [225, 13, 111, 227, 219, 160, 54, 169, 77, 25]),
]


@pytest.mark.parametrize(("text", "packed"), PACKING)
def test_packing_vectors(text, packed) -> None:
    septets = gsm7.encode(text)
    assert gsm7.pack(septets) == bytes(packed)
    assert gsm7.decode(gsm7.unpack(bytes(packed), len(septets))) == text


def test_extension_characters_cost_two_septets() -> None:
    assert gsm7.septet_length("^{}\\[~]|€\x0c") == 20
    assert gsm7.char_septets("a") == 1 and gsm7.char_septets("€") == 2
    assert gsm7.char_septets("Ж") == 0 and gsm7.char_septets("\x1b") == 0
    with pytest.raises(gsm7.Gsm7Error, match="position 1"):
        gsm7.encode("aЖ")


def test_decoding_degrades_like_23038_says() -> None:
    assert gsm7.decode([0x1B, 0x41]) == "A"  # unknown escape -> the default-table character
    assert gsm7.decode([0x41, 0x1B]) == "A "  # trailing ESC -> space
    assert gsm7.decode([0x1B, 0x1B, 0x41]) == " A"  # reserved double escape
    assert gsm7.decode([0x00, 0x7F]) == "@à"


@pytest.mark.parametrize("fill", range(7))
@settings(max_examples=40, deadline=None)
@given(septets=st.lists(st.integers(min_value=0, max_value=127), max_size=200))
def test_pack_unpack_with_fill_bits(fill, septets) -> None:
    packed = gsm7.pack(septets, fill)
    assert len(packed) == gsm7.packed_length(len(septets), fill)
    assert gsm7.unpack(packed, len(septets), fill) == septets
    if packed:
        assert packed[0] & ((1 << fill) - 1) == 0  # the fill bits themselves are zero


def test_unpack_rejects_short_data() -> None:
    with pytest.raises(gsm7.Gsm7Error):
        gsm7.unpack(b"\x00", 3)


def tz(hours: float) -> timezone:
    return timezone(timedelta(hours=hours))


@pytest.mark.parametrize(
    ("ts", "hex_"),
    [
        (datetime(2015, 11, 27, 0, 0, 0, tzinfo=tz(0)), "51117200000000"),
        (datetime(2015, 11, 27, 0, 0, 0, tzinfo=tz(2)), "51117200000080"),
        (datetime(2007, 4, 12, 23, 25, 42, tzinfo=tz(8)), "70402132522423"),
        (datetime(2007, 4, 12, 23, 25, 42, tzinfo=tz(-8)), "7040213252242B"),
        (datetime(2026, 1, 1, 0, 0, 0, tzinfo=tz(5.75)), "62101000000032"),  # Nepal, 23 quarters
    ],
)
def test_timestamp_vectors(ts, hex_) -> None:
    assert encode_timestamp(ts, "t").hex().upper() == hex_
    decoded = decode_timestamp(Reader(bytes.fromhex(hex_)), "t")
    assert decoded == ts and decoded.utcoffset() == ts.utcoffset()


def test_timestamp_with_odd_offset_falls_back_to_utc() -> None:
    ts = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone(timedelta(minutes=7)))
    decoded = decode_timestamp(Reader(encode_timestamp(ts, "t")), "t")
    assert decoded == ts and decoded.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("minutes", "vp"),
    [(30, 5), (16 * 60, 151), (3 * 1440, 169), (5 * 7 * 1440, 197), (1440, 0xA7), (5, 0)],
)
def test_relative_validity_vectors(minutes, vp) -> None:
    assert vp_relative(minutes) == vp
    assert vp_minutes(vp) == minutes


def test_relative_validity_rounds_up_and_caps() -> None:
    assert vp_minutes(vp_relative(6)) == 10
    assert vp_minutes(vp_relative(721)) == 750
    assert vp_relative(10**9) == 255


# National language tables (TS 23.038 annex A): decoding only.
@pytest.mark.parametrize(
    ("septets", "locking", "single", "text"),
    [
        ([0x1B, 0x53, 0x1B, 0x73, 0x1B, 0x67, 0x1B, 0x69], 0, 1, "Şşğı"),  # Turkish single shift
        ([0x07, 0x0B, 0x1C, 0x40, 0x60, 0x04], 1, 0, "ıĞŞİç€"),  # Turkish locking shift
        ([0x1B, 0x09, 0x1B, 0x61, 0x1B, 0x55], 0, 2, "çáÚ"),  # Spanish single shift
        ([0x04, 0x09, 0x12, 0x60, 0x7D], 3, 0, "êçª~`"),  # Portuguese locking shift
        ([0x1B, 0x7B, 0x1B, 0x7F, 0x1B, 0x12], 3, 3, "ãâΦ"),  # Portuguese locking + single
        ([0x1B, 0x65, 0x1B, 0x28, 0x1B, 0x2F], 0, 1, "€{\\"),  # the common entries stay
        ([0x1B, 0x41], 0, 1, "A"),  # not in the Turkish shift table: main table character
        ([0x2F, 0x42, 0x4C, 0x5F, 0x27, 0x59], 6, 0, "नमस्ते"),  # Hindi locking shift
        ([0x1B, 0x1D, 0x1B, 0x1C, 0x1B, 0x19], 6, 6, "१०।"),  # Hindi single shift
        ([0x2C, 0x2E], 6, 0, ",."),  # a comma at 0x2C (one transcription has an apostrophe)
        ([0x22, 0x23, 0x24, 0x25], 7, 0, "ಟಠಡಢ"),  # Kannada 0x24: the spec's typo corrected
        ([0x1B, 0x65], 0, 12, "€"),  # Telugu single shift keeps the euro sign
        ([0x00, 0x2C], 13, 0, "ا,"),  # Urdu locking shift
        ([0x07, 0x1B, 0x53], 14, 14, "ìS"),  # an unknown language id: default alphabet
    ],
)
def test_national_language_tables(septets, locking, single, text) -> None:
    assert gsm7.decode(septets, locking=locking, single=single) == text


def test_locking_tables_are_complete() -> None:
    for table in gsm7.LOCKING_TABLES.values():
        assert len(table) == 128 and table[0x1B] == "\x1b"
        assert table[0x0A] == "\n" and table[0x0D] == "\r" and table[0x20] == " "
