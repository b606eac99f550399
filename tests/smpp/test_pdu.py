"""The SMPP codec: round trips of every PDU kind, agreement with an independent implementation
(smpplib), and a decoder that answers anything malformed with PduError and nothing else."""

from __future__ import annotations

import contextlib
import struct

import pytest
import smpplib.pdu
import smpplib.smpp
from hypothesis import given, settings
from hypothesis import strategies as st

from simhive.server.smpp import pdu as P
from simhive.server.smpp.pdu import Cmd, Pdu, PduError, Status, Tag

cstr = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=15)
u8 = st.integers(0, 255)
seq = st.integers(1, 0x7FFFFFFF)
tlvs = st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=4)


def _values(specs: tuple[P.FieldSpec, ...]) -> st.SearchStrategy[dict[str, P.Value]]:
    parts: dict[str, st.SearchStrategy[P.Value]] = {}
    for name, kind, size in specs:
        if kind == "u8":
            parts[name] = u8
        elif kind == "cstr":
            parts[name] = st.text(
                alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=size - 1
            )
        elif kind == "sm":
            parts[name] = st.binary(max_size=254)
        elif kind == "dests":
            parts[name] = st.lists(
                st.one_of(
                    st.tuples(st.just(1), u8, u8, cstr),
                    st.tuples(st.just(2), st.just(0), st.just(0), cstr),
                ),
                max_size=5,
            )
        else:
            parts[name] = st.lists(st.tuples(st.integers(0, 2**32 - 1), u8, u8, cstr), max_size=5)
    return st.fixed_dictionaries(parts)


@st.composite
def pdus(draw: st.DrawFn) -> Pdu:
    command_id = draw(st.sampled_from(sorted(P.BODIES)))
    specs, with_tlvs = P.BODIES[command_id]
    return Pdu(
        command_id,
        draw(seq),
        0,
        draw(_values(specs)),
        draw(tlvs) if with_tlvs else [],
    )


@given(pdus())
def test_every_pdu_round_trips(pdu: Pdu) -> None:
    data = P.encode(pdu)
    assert P.decode_header(data)[0] == len(data)
    assert P.decode(data) == pdu


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_random_bytes_decode_or_raise_pdu_error(data: bytes) -> None:
    try:
        decoded = P.decode(data)
    except PduError as exc:
        assert exc.status != 0
    else:
        assert P.encode(decoded) == data  # what decodes is exactly what encodes back


@given(pdus(), st.data())
@settings(max_examples=300)
def test_truncated_or_corrupted_pdus_raise_pdu_error(pdu: Pdu, data: st.DataObject) -> None:
    raw = bytearray(P.encode(pdu))
    cut = data.draw(st.integers(0, len(raw) - 1))
    truncated = bytes(raw[:cut])
    # A header that still claims the full length: decode must notice the body is short.
    with pytest.raises(PduError):
        P.decode(truncated)
    # The same header with its length fixed to the truncated body: fields now end early.
    if cut >= P.HEADER_LEN:
        fixed = struct.pack(">I", cut) + truncated[4:]
        with contextlib.suppress(PduError):
            P.decode(fixed)
    # Flip one body octet: either still a valid PDU, or PduError.
    if len(raw) > P.HEADER_LEN:
        pos = data.draw(st.integers(P.HEADER_LEN, len(raw) - 1))
        raw[pos] ^= data.draw(st.integers(1, 255))
        with contextlib.suppress(PduError):
            P.decode(bytes(raw))


def test_header_errors_carry_their_status() -> None:
    with pytest.raises(PduError) as err:
        P.decode(struct.pack(">IIII", 16, 0x12345, 0, 1))
    assert err.value.status == Status.RINVCMDID
    with pytest.raises(PduError) as err:
        P.check_length(P.MAX_PDU_LEN + 1)
    assert err.value.status == Status.RINVCMDLEN
    with pytest.raises(PduError) as err:
        P.check_length(8)
    assert err.value.status == Status.RINVCMDLEN


def test_too_long_fields_name_their_status() -> None:
    body = b"x" * 70 + b"\0"  # system_id longer than 64
    data = struct.pack(">IIII", 16 + len(body) + 40, Cmd.BIND_TRANSCEIVER, 0, 7) + body
    data += b"\0" * 40
    with pytest.raises(PduError) as err:
        P.decode(data)
    assert err.value.status == Status.RINVSYSID


def test_failed_responses_may_have_no_body() -> None:
    failed = Pdu(Cmd.SUBMIT_SM_RESP, 9, Status.RTHROTTLED)
    data = P.encode(failed)
    assert len(data) == P.HEADER_LEN
    assert P.decode(data) == failed


# -- agreement with smpplib, written independently -----------------------------------------


def _smpplib_bytes(command: str, **fields: object) -> bytes:
    made = smpplib.smpp.make_pdu(command, client=_Client(), **fields)
    data: bytes = made.generate()
    return data


class _Client:
    """What smpplib's PDU factory needs of a client: sequence numbers."""

    sequence = 42

    def next_sequence(self) -> int:
        return 42


def test_smpplib_submit_sm_decodes() -> None:
    raw = _smpplib_bytes(
        "submit_sm",
        service_type="all",
        source_addr_ton=5,
        source_addr="simhive",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="4915752982212",
        esm_class=0x40,
        data_coding=8,
        registered_delivery=1,
        short_message=b"\x05\x00\x03\x07\x02\x01" + "h\u00e9".encode("utf-16-be"),
        sar_msg_ref_num=7,
    )
    got = P.decode(raw)
    assert got.command_id == Cmd.SUBMIT_SM and got.sequence == 42
    assert got.text("service_type") == "all"
    assert got.text("destination_addr") == "4915752982212"
    assert (got.num("dest_addr_ton"), got.num("esm_class"), got.num("data_coding")) == (1, 64, 8)
    assert got.octets("short_message").endswith("h\u00e9".encode("utf-16-be"))
    assert got.tlv_int(Tag.SAR_MSG_REF_NUM) == 7


def test_our_deliver_sm_decodes_in_smpplib() -> None:
    ours = Pdu(
        Cmd.DELIVER_SM,
        77,
        fields={
            "source_addr": "4915",
            "destination_addr": "crm",
            "esm_class": 4,
            "short_message": b"id:12 stat:DELIVRD",
        },  # fmt: skip
        tlvs=[P.cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, "12"), P.u8_tlv(Tag.MESSAGE_STATE, 2)],
    )
    theirs = smpplib.pdu.PDU  # the factory below parses by command id
    parsed = smpplib.smpp.parse_pdu(P.encode(ours), client=_Client())
    assert isinstance(parsed, theirs)
    assert parsed.command == "deliver_sm" and parsed.sequence == 77
    assert parsed.short_message == b"id:12 stat:DELIVRD"
    assert parsed.receipted_message_id == b"12"
    assert parsed.message_state == 2
