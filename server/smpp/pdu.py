"""SMPP 3.4 PDUs as bytes and back, without I/O.

A PDU is a 16-octet header (command_length, command_id, command_status, sequence_number, all
big-endian u32) and a body of mandatory fields followed, for some commands, by TLVs (tag u16,
length u16, value). `decode` is strict: every field must fit its declared size and the body must
end exactly where its fields and TLVs end, so a malformed PDU raises `PduError` carrying the
command_status to answer with, never anything else.

Two fields are accepted longer than SMPP 3.4 allows: a bind's system_id (16) and password (9)
take up to 64 characters each, because simhive's credentials are tokens longer than 8 characters
(docs/smpp.md says so). Everything else keeps the specification's sizes.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Literal

HEADER = struct.Struct(">IIII")
HEADER_LEN = HEADER.size
# Largest PDU read at all: a 64 KiB message_payload is the protocol ceiling, but simhive stores
# at most 10,000 characters (20,000 octets as UCS-2) per message, so anything bigger is refused
# before its body is read.
MAX_PDU_LEN = 32 * 1024
RESP = 0x80000000


class Cmd(enum.IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021


class Status(enum.IntEnum):
    """command_status values simhive answers with (SMPP 3.4 section 5.1.3)."""

    ROK = 0x00
    RINVMSGLEN = 0x01
    RINVCMDLEN = 0x02
    RINVCMDID = 0x03
    RINVBNDSTS = 0x04
    RALYBND = 0x05
    RINVREGDLVFLG = 0x07
    RSYSERR = 0x08
    RINVSRCADR = 0x0A
    RINVDSTADR = 0x0B
    RINVMSGID = 0x0C
    RBINDFAIL = 0x0D
    RINVPASWD = 0x0E
    RINVSYSID = 0x0F
    RCANCELFAIL = 0x11
    RMSGQFUL = 0x14
    RINVSERTYP = 0x15
    RINVNUMDESTS = 0x33
    RINVDESTFLAG = 0x40
    RINVESMCLASS = 0x43
    RSUBMITFAIL = 0x45
    RTHROTTLED = 0x58
    RINVSCHED = 0x61
    RINVEXPIRY = 0x62
    RQUERYFAIL = 0x67
    RINVOPTPARSTREAM = 0xC0
    RINVPARLEN = 0xC2
    RINVOPTPARAMVAL = 0xC4
    RUNKNOWNERR = 0xFF


class Tag(enum.IntEnum):
    PAYLOAD_TYPE = 0x0019
    RECEIPTED_MESSAGE_ID = 0x001E
    USER_MESSAGE_REFERENCE = 0x0204
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class MessageState(enum.IntEnum):
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class PduError(Exception):
    """A PDU that cannot be decoded; `status` is the command_status to answer it with."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


Kind = Literal["u8", "cstr", "sm", "dests", "unsuccess"]
FieldSpec = tuple[str, Kind, int]  # name, kind, size (C strings: longest value + 1 for the NUL)
Value = int | str | bytes | list[tuple[int, int, int, str]]

_BIND: tuple[FieldSpec, ...] = (
    ("system_id", "cstr", 65),
    ("password", "cstr", 65),
    ("system_type", "cstr", 13),
    ("interface_version", "u8", 1),
    ("addr_ton", "u8", 1),
    ("addr_npi", "u8", 1),
    ("address_range", "cstr", 41),
)
_SOURCE: tuple[FieldSpec, ...] = (
    ("source_addr_ton", "u8", 1),
    ("source_addr_npi", "u8", 1),
    ("source_addr", "cstr", 21),
)
_DEST: tuple[FieldSpec, ...] = (
    ("dest_addr_ton", "u8", 1),
    ("dest_addr_npi", "u8", 1),
    ("destination_addr", "cstr", 21),
)
_MESSAGE_TAIL: tuple[FieldSpec, ...] = (
    ("esm_class", "u8", 1),
    ("protocol_id", "u8", 1),
    ("priority_flag", "u8", 1),
    ("schedule_delivery_time", "cstr", 17),
    ("validity_period", "cstr", 17),
    ("registered_delivery", "u8", 1),
    ("replace_if_present_flag", "u8", 1),
    ("data_coding", "u8", 1),
    ("sm_default_msg_id", "u8", 1),
    ("short_message", "sm", 254),
)
_SM: tuple[FieldSpec, ...] = (("service_type", "cstr", 6), *_SOURCE, *_DEST, *_MESSAGE_TAIL)
_MULTI: tuple[FieldSpec, ...] = (
    ("service_type", "cstr", 6),
    *_SOURCE,
    ("dest_address", "dests", 254),
    *_MESSAGE_TAIL,
)
_ID: tuple[FieldSpec, ...] = (("message_id", "cstr", 65),)

# Mandatory fields of each command, and whether TLVs may follow them.
BODIES: dict[int, tuple[tuple[FieldSpec, ...], bool]] = {
    Cmd.GENERIC_NACK: ((), False),
    Cmd.BIND_RECEIVER: (_BIND, False),
    Cmd.BIND_TRANSMITTER: (_BIND, False),
    Cmd.BIND_TRANSCEIVER: (_BIND, False),
    Cmd.BIND_RECEIVER_RESP: ((("system_id", "cstr", 16),), True),
    Cmd.BIND_TRANSMITTER_RESP: ((("system_id", "cstr", 16),), True),
    Cmd.BIND_TRANSCEIVER_RESP: ((("system_id", "cstr", 16),), True),
    Cmd.SUBMIT_SM: (_SM, True),
    Cmd.SUBMIT_SM_RESP: (_ID, False),
    Cmd.DELIVER_SM: (_SM, True),
    Cmd.DELIVER_SM_RESP: (_ID, False),
    Cmd.SUBMIT_MULTI: (_MULTI, True),
    Cmd.SUBMIT_MULTI_RESP: ((*_ID, ("unsuccess_sme", "unsuccess", 254)), False),
    Cmd.QUERY_SM: ((*_ID, *_SOURCE), False),
    Cmd.QUERY_SM_RESP: (
        (*_ID, ("final_date", "cstr", 17), ("message_state", "u8", 1), ("error_code", "u8", 1)),
        False,
    ),
    Cmd.CANCEL_SM: ((("service_type", "cstr", 6), *_ID, *_SOURCE, *_DEST), False),
    Cmd.CANCEL_SM_RESP: ((), False),
    Cmd.UNBIND: ((), False),
    Cmd.UNBIND_RESP: ((), False),
    Cmd.ENQUIRE_LINK: ((), False),
    Cmd.ENQUIRE_LINK_RESP: ((), False),
}
# Responses whose body is left out when their status is an error (SMPP 3.4 section 4: "the body
# is not returned" for a failed submit_sm_resp and friends); decode accepts either form.
_EMPTY_ON_ERROR = frozenset(
    {
        Cmd.BIND_RECEIVER_RESP,
        Cmd.BIND_TRANSMITTER_RESP,
        Cmd.BIND_TRANSCEIVER_RESP,
        Cmd.SUBMIT_SM_RESP,
        Cmd.SUBMIT_MULTI_RESP,
        Cmd.QUERY_SM_RESP,
    }
)
_DEFAULTS: dict[Kind, Value] = {"u8": 0, "cstr": "", "sm": b"", "dests": [], "unsuccess": []}


@dataclass(slots=True)
class Pdu:
    """One PDU. `fields` holds the mandatory fields by their SMPP names (missing ones encode as
    their zero value); `tlvs` the optional parameters in wire order."""

    command_id: int
    sequence: int
    status: int = 0
    fields: dict[str, Value] = field(default_factory=dict)
    tlvs: list[tuple[int, bytes]] = field(default_factory=list)

    def num(self, name: str) -> int:
        value = self.fields.get(name, 0)
        return value if isinstance(value, int) else 0

    def text(self, name: str) -> str:
        value = self.fields.get(name, "")
        return value if isinstance(value, str) else ""

    def octets(self, name: str) -> bytes:
        value = self.fields.get(name, b"")
        return value if isinstance(value, bytes) else b""

    def tlv(self, tag: int) -> bytes | None:
        for t, v in self.tlvs:
            if t == tag:
                return v
        return None

    def tlv_int(self, tag: int) -> int | None:
        value = self.tlv(tag)
        return None if value is None or not value else int.from_bytes(value, "big")

    @property
    def name(self) -> str:
        try:
            return Cmd(self.command_id).name.lower()
        except ValueError:
            return f"0x{self.command_id:08x}"


def response_id(command_id: int) -> int:
    return command_id | RESP


def is_request(command_id: int) -> bool:
    return not command_id & RESP


# -- encoding ----------------------------------------------------------------------------------


def _cstr(value: str, size: int, name: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= size or b"\0" in raw:
        raise ValueError(f"{name} too long or contains NUL: {value!r}")
    return raw + b"\0"


def encode(pdu: Pdu) -> bytes:
    """The PDU's bytes. ValueError for a field that does not fit (a bug in the caller)."""
    specs, with_tlvs = BODIES[pdu.command_id]
    parts: list[bytes] = []
    if not (pdu.command_id in _EMPTY_ON_ERROR and pdu.status != 0 and not pdu.fields):
        for name, kind, size in specs:
            value = pdu.fields.get(name, _DEFAULTS[kind])
            parts.append(_encode_field(name, kind, size, value))
    if pdu.tlvs and not with_tlvs:
        raise ValueError(f"{pdu.name} takes no TLVs")
    for tag, value in pdu.tlvs:
        parts.append(struct.pack(">HH", tag, len(value)) + value)
    body = b"".join(parts)
    return HEADER.pack(HEADER_LEN + len(body), pdu.command_id, pdu.status, pdu.sequence) + body


def _encode_field(name: str, kind: Kind, size: int, value: Value) -> bytes:
    if kind == "u8":
        assert isinstance(value, int)
        return bytes([value])
    if kind == "cstr":
        assert isinstance(value, str)
        return _cstr(value, size, name)
    if kind == "sm":
        assert isinstance(value, bytes)
        if len(value) > size:
            raise ValueError(f"short_message longer than {size} octets")
        return bytes([len(value)]) + value
    assert isinstance(value, list)
    if len(value) > size:
        raise ValueError(f"{name}: more than {size} entries")
    out = bytearray([len(value)])
    for flag, ton, npi, addr in value:
        if kind == "dests":  # (dest_flag, ton, npi, address); flag 2: a distribution list name
            out.append(flag)
            out += _cstr(addr, 21, name) if flag == 2 else bytes([ton, npi]) + _cstr(addr, 21, name)
        else:  # unsuccess_sme: (error_status_code, ton, npi, address)
            out += bytes([ton, npi]) + _cstr(addr, 21, name) + struct.pack(">I", flag)
    return bytes(out)


# -- decoding ----------------------------------------------------------------------------------


def decode_header(data: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of a 16-octet header."""
    length, command_id, status, sequence = HEADER.unpack(data[:HEADER_LEN])
    return int(length), int(command_id), int(status), int(sequence)


def check_length(length: int) -> None:
    if length < HEADER_LEN or length > MAX_PDU_LEN:
        raise PduError(Status.RINVCMDLEN, f"command_length {length} outside 16..{MAX_PDU_LEN}")


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def u8(self, name: str) -> int:
        if self.pos >= len(self.data):
            raise PduError(Status.RINVCMDLEN, f"body ends before {name}")
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int, name: str) -> bytes:
        if self.pos + n > len(self.data):
            raise PduError(Status.RINVCMDLEN, f"body ends inside {name}")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def cstr(self, size: int, name: str) -> str:
        end = self.data.find(b"\0", self.pos, self.pos + size)
        if end < 0:
            if len(self.data) - self.pos < size:
                raise PduError(Status.RINVCMDLEN, f"body ends inside {name}")
            raise PduError(_too_long_status(name), f"{name} longer than {size - 1} octets")
        value = self.data[self.pos : end].decode("latin-1")
        self.pos = end + 1
        return value


def _too_long_status(name: str) -> Status:
    return {
        "system_id": Status.RINVSYSID,
        "password": Status.RINVPASWD,
        "source_addr": Status.RINVSRCADR,
        "destination_addr": Status.RINVDSTADR,
        "message_id": Status.RINVMSGID,
        "service_type": Status.RINVSERTYP,
        "schedule_delivery_time": Status.RINVSCHED,
        "validity_period": Status.RINVEXPIRY,
    }.get(name, Status.RINVCMDLEN)


def decode(data: bytes) -> Pdu:
    """A whole PDU (header included) -> Pdu; PduError for anything malformed."""
    if len(data) < HEADER_LEN:
        raise PduError(Status.RINVCMDLEN, "shorter than a PDU header")
    length, command_id, status, sequence = decode_header(data)
    check_length(length)
    if length != len(data):
        raise PduError(Status.RINVCMDLEN, f"command_length {length} but {len(data)} octets")
    if command_id not in BODIES:
        raise PduError(Status.RINVCMDID, f"unknown command_id 0x{command_id:08x}")
    pdu = Pdu(command_id, sequence, status)
    specs, with_tlvs = BODIES[command_id]
    r = _Reader(data, HEADER_LEN)
    if command_id in _EMPTY_ON_ERROR and status != 0 and length == HEADER_LEN:
        return pdu
    for name, kind, size in specs:
        pdu.fields[name] = _decode_field(r, name, kind, size)
    if with_tlvs:
        pdu.tlvs = decode_tlvs(data[r.pos :])
    elif r.pos != len(data):
        raise PduError(Status.RINVCMDLEN, f"{len(data) - r.pos} octets after the last field")
    return pdu


def _decode_field(r: _Reader, name: str, kind: Kind, size: int) -> Value:
    if kind == "u8":
        return r.u8(name)
    if kind == "cstr":
        return r.cstr(size, name)
    if kind == "sm":
        return r.take(r.u8("sm_length"), name)
    count = r.u8(name)
    entries: list[tuple[int, int, int, str]] = []
    for _ in range(count):
        if kind == "dests":
            flag = r.u8("dest_flag")
            if flag == 1:
                ton, npi = r.u8("dest_addr_ton"), r.u8("dest_addr_npi")
                entries.append((1, ton, npi, r.cstr(21, "destination_addr")))
            elif flag == 2:
                entries.append((2, 0, 0, r.cstr(21, "dl_name")))
            else:
                raise PduError(Status.RINVDESTFLAG, f"dest_flag {flag}")
        else:
            ton, npi = r.u8("dest_addr_ton"), r.u8("dest_addr_npi")
            addr = r.cstr(21, "destination_addr")
            code = int.from_bytes(r.take(4, "error_status_code"), "big")
            entries.append((code, ton, npi, addr))
    return entries


def decode_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise PduError(Status.RINVOPTPARSTREAM, "truncated TLV header")
        tag, length = struct.unpack_from(">HH", data, pos)
        pos += 4
        if pos + length > len(data):
            raise PduError(Status.RINVPARLEN, f"TLV 0x{tag:04x} longer than the PDU")
        out.append((tag, data[pos : pos + length]))
        pos += length
    return out


def u8_tlv(tag: int, value: int) -> tuple[int, bytes]:
    return tag, bytes([value])


def cstr_tlv(tag: int, value: str) -> tuple[int, bytes]:
    return tag, value.encode("latin-1") + b"\0"


def response(request: Pdu, status: int = 0, **fields: Value) -> Pdu:
    return Pdu(response_id(request.command_id), request.sequence, status, dict(fields))


def generic_nack(sequence: int, status: int) -> Pdu:
    return Pdu(Cmd.GENERIC_NACK, sequence, status)
