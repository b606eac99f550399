"""Property tests: what we encode, we decode back to the same message."""

from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.agent.modem import gsm7
from simhive.agent.modem.pdu import (
    Coding,
    Concat,
    Deliver,
    StatusReport,
    decode_incoming,
    decode_submit,
    encode_deliver,
    encode_status_report,
    encode_submit,
    split_text,
)
from tests.pdu.strategies import alpha_senders, any_text, numbers, timestamps

EXAMPLES = settings(max_examples=300, deadline=None)


@EXAMPLES
@given(
    number=numbers,
    text=any_text,
    status_report=st.booleans(),
    validity=st.one_of(st.none(), st.integers(min_value=1, max_value=70 * 7 * 1440)),
    ref16=st.booleans(),
    ref=st.integers(min_value=0, max_value=255),
)
def test_submit_round_trip(number, text, status_report, validity, ref16, ref) -> None:
    parts = encode_submit(
        number,
        text,
        status_report=status_report,
        validity_minutes=validity,
        concat_reference=ref,
        ref16=ref16,
    )
    decoded = [decode_submit(p.pdu) for p in parts]
    assert "".join(d.text for d in decoded) == text
    for seq, (part, d) in enumerate(zip(parts, decoded, strict=True), start=1):
        assert part.tpdu_length == len(part.pdu) - 1 and part.pdu[0] == 0
        assert d.destination == number
        assert d.status_report is status_report
        assert d.coding is part.coding
        if validity is None:
            assert d.validity_minutes is None
        else:
            # Rounded up to the next representable period, capped at 63 weeks.
            assert d.validity_minutes is not None
            assert d.validity_minutes >= min(validity, 63 * 7 * 1440)
        if len(parts) == 1:
            assert d.concat is None and d.user_data_header == b""
        else:
            assert d.concat == Concat(ref, len(parts), seq)
            assert d.user_data_header[1] == (0x08 if ref16 else 0x00)
    coding = parts[0].coding
    assert coding is (Coding.GSM7 if gsm7.is_gsm7(text) else Coding.UCS2)


@EXAMPLES
@given(text=any_text)
def test_split_respects_billing_limits(text) -> None:
    coding, parts = split_text(text)
    assert "".join(parts) == text
    if coding is Coding.GSM7:
        sizes = [gsm7.septet_length(p) for p in parts]
        single, per = 160, 153
    else:
        sizes = [len(p.encode("utf-16-be")) // 2 for p in parts]
        single, per = 70, 67
    if len(parts) == 1:
        assert sizes[0] <= single
    else:
        assert sum(sizes) > single
        assert all(s <= per for s in sizes)
        # Greedy: each part but the last is full up to one character (an ESC or surrogate pair).
        assert all(s >= per - 1 for s in sizes[:-1])


@EXAMPLES
@given(sender=st.one_of(numbers, alpha_senders), text=any_text, ts=timestamps, ref16=st.booleans())
def test_deliver_round_trip(sender, text, ts, ref16) -> None:
    coding, parts = split_text(text, ref16=ref16)
    got = []
    for seq, part in enumerate(parts, start=1):
        concat = Concat(513 if ref16 else 7, len(parts), seq) if len(parts) > 1 else None
        pdu = encode_deliver(
            sender, part, sc_timestamp=ts, smsc="+491710760000", concat=concat, ref16=ref16
        )
        msg = decode_incoming(pdu)
        assert isinstance(msg, Deliver)
        assert msg.sender == sender
        assert msg.sc_timestamp == ts and msg.sc_timestamp.utcoffset() == ts.utcoffset()
        assert msg.smsc == "+491710760000"
        assert msg.concat == concat
        assert msg.coding is coding
        got.append(msg.text)
    assert "".join(got) == text


@EXAMPLES
@given(
    mr=st.integers(min_value=0, max_value=255),
    recipient=numbers,
    status=st.integers(min_value=0, max_value=255),
    sc=timestamps,
    dt=timestamps,
    smsc=st.one_of(st.none(), numbers),
)
def test_status_report_round_trip(mr, recipient, status, sc, dt, smsc) -> None:
    pdu = encode_status_report(mr, recipient, status, sc_timestamp=sc, discharge_time=dt, smsc=smsc)
    report = decode_incoming(pdu)
    assert report == StatusReport(
        smsc=smsc,
        message_reference=mr,
        recipient=recipient,
        sc_timestamp=sc,
        discharge_time=dt,
        status=status,
    )
    assert decode_incoming(pdu[1 + pdu[0] :], with_smsc=False) == StatusReport(
        smsc=None,
        message_reference=mr,
        recipient=recipient,
        sc_timestamp=sc,
        discharge_time=dt,
        status=status,
    )


@EXAMPLES
@given(data=st.binary(max_size=140))
def test_8bit_round_trip(data) -> None:
    text = data.decode("latin-1")
    [part] = encode_submit("+4912345", text, coding=Coding.BIT8)
    d = decode_submit(part.pdu)
    assert d.coding is Coding.BIT8 and d.dcs == 0x04
    assert d.text.encode("latin-1") == data
