"""python-gammu (bundled Gammu 1.45) as an independent oracle, in both directions.

Gammu's PDU code shares nothing with ours, so agreement here is evidence that both follow
TS 23.040 rather than the same misunderstanding.

One Gammu quirk is worked around, not hidden: for 7-bit text with extension characters,
python-gammu's DecodePDU returns `Length` *septets* worth of characters, so the text it hands
back runs past the real end into a NUL and stale buffer contents. The real text ends at that NUL.
python-gammu's EncodePDU(Layout="StatusReport") returns no octets, so status reports are checked
in one direction here and against published real-world PDUs in test_corpus.py.
"""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.agent.modem import gsm7
from simhive.agent.modem.pdu import (
    Coding,
    Concat,
    Deliver,
    decode_incoming,
    decode_submit,
    encode_deliver,
    encode_status_report,
    encode_submit,
    split_text,
)
from tests.pdu.gammu_time import as_gammu_gives
from tests.pdu.strategies import EMOJI, EXT_CHARS, GSM_CHARS, timestamps

gammu = pytest.importorskip("gammu")

EXAMPLES = settings(max_examples=150, deadline=None)

# Gammu keeps text NUL-terminated, so a U+0000 in the text cannot survive its API; and in UCS2
# it maps '~' to U+0001 and back (its own escape syntax), so neither appears in UCS2 texts here.
oracle_text = st.one_of(
    st.text(alphabet=GSM_CHARS + EXT_CHARS, max_size=400),
    st.text(alphabet=st.sampled_from(GSM_CHARS + EXT_CHARS + EMOJI + "ĉЖ中"), max_size=300),
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00\x01"),
        max_size=200,
    ),
).filter(lambda t: gsm7.is_gsm7(t) or "~" not in t)


# Gammu reads '¡' (0x40) as '@' and drops trailing '@' in alphanumeric addresses (its own quirk);
# real sender IDs are letters, digits and a little punctuation, which is what we compare on.
oracle_senders = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -.&",
    min_size=1,
    max_size=11,
)


# Gammu's SCTS decoder misreads years from 2090 on (it gives 2080 for "90"); stay below that.
oracle_timestamps = timestamps.filter(lambda ts: ts.year < 2080)


def _gammu_text(decoded: dict[str, object]) -> str:
    text = decoded["Text"]
    assert isinstance(text, str)
    if decoded["Coding"] == "Default_No_Compression" and "\x00" in text:
        text = text[: text.index("\x00")]  # see the module docstring
    return text


def _gammu_naive(ts: datetime) -> datetime:
    return ts.replace(tzinfo=None)


# --- ours -> Gammu --------------------------------------------------------------------------


@EXAMPLES
@given(text=oracle_text, ref16=st.booleans(), ref=st.integers(min_value=0, max_value=255))
def test_gammu_decodes_our_submits(text, ref16, ref) -> None:
    parts = encode_submit("+491601112233", text, concat_reference=ref, ref16=ref16)
    texts = []
    for seq, part in enumerate(parts, start=1):
        g = gammu.DecodePDU(part.pdu, SMSC=True)
        assert g["Type"] == "Submit"
        assert g["Number"] == "+491601112233"
        assert g["Coding"] == (
            "Default_No_Compression" if part.coding is Coding.GSM7 else "Unicode_No_Compression"
        )
        assert g["SMSC"]["Validity"] == "1440M"  # 0xA7, the default 24 h
        udh = g["UDH"]
        if len(parts) == 1:
            assert udh["Type"] == "NoUDH"
        else:
            assert udh["Type"] == ("ConcatenatedMessages16bit" if ref16 else "ConcatenatedMessages")
            assert (udh["ID16bit"] if ref16 else udh["ID8bit"]) == ref
            assert (udh["PartNumber"], udh["AllParts"]) == (seq, len(parts))
        texts.append(_gammu_text(g))
    assert "".join(texts) == text


@EXAMPLES
@given(
    sender=st.one_of(st.sampled_from(["+491601112233", "01601112233"]), oracle_senders),
    text=oracle_text,
    ts=oracle_timestamps,
)
def test_gammu_decodes_our_delivers(sender, text, ts) -> None:
    coding, parts = split_text(text)
    texts = []
    for seq, part in enumerate(parts, start=1):
        concat = Concat(42, len(parts), seq) if len(parts) > 1 else None
        pdu = encode_deliver(sender, part, sc_timestamp=ts, smsc="+491710760000", concat=concat)
        g = gammu.DecodePDU(pdu, SMSC=True)
        assert g["Type"] == "Deliver"
        assert g["SMSC"]["Number"] == "+491710760000"
        assert g["Number"] == sender
        assert g["DateTime"] == as_gammu_gives(ts)
        texts.append(_gammu_text(g))
    assert "".join(texts) == text


@pytest.mark.parametrize(
    ("status", "gammu_text"), [(0x00, "Delivered"), (0x21, "Pending"), (0x46, "Failed")]
)
def test_gammu_decodes_our_status_reports(status, gammu_text) -> None:
    sc = datetime(2026, 11, 22, 4, 34, 5, tzinfo=timezone(timedelta(hours=1)))
    dt = datetime(2026, 11, 22, 4, 35, 0, tzinfo=UTC)
    pdu = encode_status_report(
        200, "+491601112233", status, sc_timestamp=sc, discharge_time=dt, smsc="+491710760000"
    )
    g = gammu.DecodePDU(pdu, SMSC=True)
    assert g["Type"] == "Status_Report"
    assert g["MessageReference"] == 200
    assert g["DeliveryStatus"] == status
    assert g["Number"] == "+491601112233"
    assert g["DateTime"] == as_gammu_gives(sc) and g["SMSCDateTime"] == as_gammu_gives(dt)
    assert g["Text"] == gammu_text


@EXAMPLES
@given(text=oracle_text)
def test_part_counts_match_gammu_sms_counter(text) -> None:
    coding, parts = split_text(text)
    gcoding = "Default" if coding is Coding.GSM7 else "Unicode_No_Compression"
    gammu_parts, _ = gammu.SMSCounter(text, Coding=gcoding)
    assert len(parts) == max(1, gammu_parts)
    _, parts16 = split_text(text, ref16=True)
    if len(parts16) > 1:  # a single SMS carries no header, Gammu's counter assumes one
        gammu16, _ = gammu.SMSCounter(text, UDH="ConcatenatedMessages16bit", Coding=gcoding)
        assert len(parts16) == gammu16


@pytest.mark.parametrize(
    ("text", "parts"),
    [("x" * 160, 1), ("x" * 161, 2), ("€" * 80, 1), ("€" * 81, 2), ("Ж" * 70, 1), ("Ж" * 71, 2)],
)
def test_spec_verified_counts(text, parts) -> None:
    # Counts verified with gammu.SMSCounter.
    assert len(split_text(text)[1]) == parts


# --- Gammu -> ours --------------------------------------------------------------------------


def _gammu_encode(text: str, entry: str) -> list[dict[str, object]]:
    info = {
        "Class": -1,
        "Unicode": not gsm7.is_gsm7(text),
        "Entries": [{"ID": entry, "Buffer": text}],
    }
    messages: list[dict[str, object]] = gammu.EncodeSMS(info)
    for m in messages:
        m["SMSC"] = {"Location": 0, "Number": "+491710760000"}
        m["Number"] = "+491601112233"
    return messages


@EXAMPLES
@given(
    text=oracle_text.filter(lambda t: t != ""),
    entry=st.sampled_from(["ConcatenatedTextLong", "ConcatenatedTextLong16bit"]),
    ts=oracle_timestamps,
)
def test_we_decode_gammu_encoded_pdus(text, entry, ts) -> None:
    messages = _gammu_encode(text, entry)
    submits, delivers = [], []
    for m in messages:
        m["DateTime"] = _gammu_naive(ts.astimezone(UTC))
        submits.append(decode_submit(gammu.EncodePDU(m, Layout="Submit")))
        m["Type"] = "Deliver"
        delivered = decode_incoming(gammu.EncodePDU(m, Layout="Deliver"))
        assert isinstance(delivered, Deliver)
        delivers.append(delivered)
    assert "".join(s.text for s in submits) == text
    assert "".join(d.text for d in delivers) == text
    expected = Coding.GSM7 if gsm7.is_gsm7(text) else Coding.UCS2
    for seq, (s, d) in enumerate(zip(submits, delivers, strict=True), start=1):
        assert s.destination == d.sender == "+491601112233"
        assert d.smsc == "+491710760000"
        assert s.coding is d.coding is expected
        assert d.sc_timestamp == ts  # Gammu writes UTC with a zero offset
        if len(messages) > 1:
            assert s.concat is not None and d.concat == s.concat
            assert (s.concat.seq, s.concat.total) == (seq, len(messages))
            assert s.user_data_header[1] == (0x08 if entry.endswith("16bit") else 0x00)
