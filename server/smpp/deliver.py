"""deliver_sm PDUs for outbox rows (receipts and incoming SMS), and simhive statuses in SMPP
terms (receipt `stat:`, message_state), without I/O.

Receipt text (the de-facto standard of SMPP 3.4 appendix B):
    id:<message_id> sub:001 dlvrd:<001|000> submit date:<YYMMDDhhmm> done date:<YYMMDDhhmm>
    stat:<DELIVRD|UNDELIV|REJECTD|EXPIRED> err:<simhive status, 3 digits> text:<first 20 chars>
with esm_class 0x04 (SMSC delivery receipt) and the receipted_message_id and message_state TLVs.
"""

from __future__ import annotations

from simhive.server.core.status import Status as SmsStatus
from simhive.server.smpp import times
from simhive.server.smpp.pdu import Cmd, MessageState, Pdu, Tag, cstr_tlv, u8_tlv
from simhive.server.smpp.text import body_fields
from simhive.server.store.sqlite_smpp import EXPIRED, OutboxRow

ESM_RECEIPT = 0x04
RECEIPT_TEXT_CHARS = 20


def message_state(status: int | None) -> MessageState:
    """A simhive status as SMPP's message_state (None: the message was cancelled)."""
    if status is None:
        return MessageState.DELETED
    if status == EXPIRED:
        return MessageState.EXPIRED
    if status == SmsStatus.DELIVERED:
        return MessageState.DELIVERED
    if status in (SmsStatus.NOT_ALLOWED, SmsStatus.NOT_ALLOWED_AT_ALL):
        return MessageState.REJECTED
    if status in (SmsStatus.NEW, SmsStatus.TAKEN, SmsStatus.QUEUED, SmsStatus.SENT):
        return MessageState.ENROUTE
    if status == SmsStatus.RESERVED or status == SmsStatus.INCOMING:
        return MessageState.UNKNOWN
    return MessageState.UNDELIVERABLE


_STAT = {
    MessageState.DELIVERED: "DELIVRD",
    MessageState.REJECTED: "REJECTD",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.DELETED: "DELETED",
    MessageState.ENROUTE: "ENROUTE",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.ACCEPTED: "ACCEPTD",
}


def receipt_text(row: OutboxRow) -> str:
    state = message_state(row.status)
    delivered = "001" if state == MessageState.DELIVERED else "000"
    err = 0 if state == MessageState.DELIVERED else row.status
    # Receipts are read as ASCII by every client: other characters of the quoted text become ?.
    head = row.body[:RECEIPT_TEXT_CHARS].encode("ascii", "replace").decode("ascii")
    submitted = times.receipt_date(row.submitted if row.submitted is not None else row.done)
    return (
        f"id:{row.smpp_id} sub:001 dlvrd:{delivered} submit date:{submitted}"
        f" done date:{times.receipt_date(row.done)} stat:{_STAT[state]} err:{err:03d}"
        f" text:{head}"
    )


def _address(field: str, value: str) -> dict[str, int | str]:
    """An address field set: "+4915..." goes out as 4915... with TON 1 (international) and NPI 1
    (E.164), as SMSCs send them; anything else as given with TON and NPI 0 (unknown)."""
    prefix = "source_addr" if field == "source_addr" else "dest_addr"
    if value.startswith("+") and value[1:].isdigit():
        return {f"{prefix}_ton": 1, f"{prefix}_npi": 1, field: value[1:21]}
    return {f"{prefix}_ton": 0, f"{prefix}_npi": 0, field: value[:20]}


def deliver_pdu(row: OutboxRow, sequence: int) -> Pdu:
    """The deliver_sm announcing one outbox row."""
    if row.kind == "receipt":
        text = receipt_text(row).encode("ascii")
        return Pdu(
            Cmd.DELIVER_SM,
            sequence,
            fields={
                # The receipt comes from the recipient and goes to the original sender.
                **_address("source_addr", row.dest_addr),
                **_address("destination_addr", row.source_addr),
                "esm_class": ESM_RECEIPT,
                "data_coding": 0,
                "short_message": text,
            },
            tlvs=[
                cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, row.smpp_id or ""),
                u8_tlv(Tag.MESSAGE_STATE, message_state(row.status)),
            ],
        )
    fields, tlvs = body_fields(row.body)
    return Pdu(
        Cmd.DELIVER_SM,
        sequence,
        fields={
            **_address("source_addr", row.sendto),
            **_address("destination_addr", row.source_addr),
            **fields,
        },
        tlvs=tlvs,
    )
