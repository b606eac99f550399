"""SMS TPDU codec (3GPP TS 23.040 / 23.038), sans-IO, standard library only.

Builds SMS-SUBMIT PDUs for `AT+CMGS` in PDU mode and decodes what a modem hands back:
SMS-DELIVER (`+CMGR`, `+CMGL`, `+CMT`) and SMS-STATUS-REPORT (`+CDS`, `"SR"` storage). It can also
build DELIVER and STATUS-REPORT PDUs and decode SUBMIT PDUs, which is what a modem emulator's
virtual SMSC needs. Every malformed input raises `PduError`, never an IndexError or the like:
a modem line is untrusted input.

This module is the codec's public face; the work is split by job:
- `pdu_types`: the message values and `PduError`;
- `pdu_fields`: addresses, timestamps, validity period, DCS, the bounds-checked reader;
- `pdu_userdata`: coding choice, splitting into parts, the UDH and the user data field;
- `pdu_encode` / `pdu_decode`: whole PDUs built from / parsed into the values.

Text conventions:
- UCS2 is UTF-16BE on the air, as phones send it: characters beyond the BMP (emoji) are
  surrogate pairs and cost two of the 70/67/66 units.
- 8-bit data is carried as text with one character per octet (latin-1), so
  `text.encode("latin-1")` gives the raw octets back.
- A UCS2 part of a concatenated message keeps a lone surrogate at its edge (another sender split a
  pair across parts); `reassembly` joins the parts and repairs them. Unsplit messages never
  contain lone surrogates.
"""

from __future__ import annotations

from simhive.agent.modem.pdu_decode import decode_incoming, decode_submit, from_hex
from simhive.agent.modem.pdu_encode import encode_deliver, encode_status_report, encode_submit
from simhive.agent.modem.pdu_types import (
    Coding,
    Concat,
    Deliver,
    PduError,
    StatusReport,
    Submit,
    SubmitPdu,
)
from simhive.agent.modem.pdu_userdata import MAX_PARTS, split_text

__all__ = [
    "MAX_PARTS",
    "Coding",
    "Concat",
    "Deliver",
    "PduError",
    "StatusReport",
    "Submit",
    "SubmitPdu",
    "decode_incoming",
    "decode_submit",
    "encode_deliver",
    "encode_status_report",
    "encode_submit",
    "from_hex",
    "split_text",
]
