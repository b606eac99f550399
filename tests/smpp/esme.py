"""An ESME built on smpplib (a third-party SMPP client from PyPI), as the acceptance tests and the
benchmark use it: submits, collects submit_sm_resp ids, and keeps every deliver_sm it got."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import smpplib.client
import smpplib.consts
import smpplib.gsm

T = TypeVar("T")


@dataclass
class Received:
    """One deliver_sm as the client saw it."""

    esm_class: int
    data_coding: int
    source_addr: str
    destination_addr: str
    short_message: bytes
    receipted_message_id: str | None
    message_state: int | None

    @property
    def text(self) -> str:
        if self.data_coding == 8:
            return self.short_message.decode("utf-16-be")
        return self.short_message.decode("latin-1")

    @property
    def is_receipt(self) -> bool:
        return bool(self.esm_class & 0x04)


def _str(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value or "")


class Esme:
    def __init__(
        self, port: int, system_id: str, password: str, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.port = port
        self.ssl_context = ssl_context
        self.system_id = system_id
        self.password = password
        self.ids: dict[int, str] = {}  # submit sequence -> message_id
        self.errors: dict[int, int] = {}  # submit sequence -> command_status
        self.received: list[Received] = []
        self.client: Any = None

    def bind(self, mode: str = "transceiver") -> Esme:
        client = smpplib.client.Client("127.0.0.1", self.port, timeout=0.5,
                                       ssl_context=self.ssl_context,
                                       allow_unknown_opt_params=True)  # fmt: skip
        client.set_message_sent_handler(self._sent)
        client.set_message_received_handler(self._received)
        client.set_error_pdu_handler(self._error)
        client.connect()
        getattr(client, f"bind_{mode}")(system_id=self.system_id, password=self.password)
        self.client = client
        return self

    def _sent(self, pdu: Any) -> None:
        self.ids[pdu.sequence] = _str(pdu.message_id)

    def _error(self, pdu: Any) -> None:
        self.errors[pdu.sequence] = int(pdu.status)

    def _received(self, pdu: Any) -> None:
        state = getattr(pdu, "message_state", None)
        receipted = getattr(pdu, "receipted_message_id", None)
        self.received.append(
            Received(
                esm_class=int(pdu.esm_class),
                data_coding=int(pdu.data_coding),
                source_addr=_str(pdu.source_addr),
                destination_addr=_str(pdu.destination_addr),
                short_message=bytes(pdu.short_message or b""),
                receipted_message_id=None if receipted is None else _str(receipted),
                message_state=None if state is None else int(state),
            )
        )

    def send_text(self, to: str, text: str, registered_delivery: int = 1) -> list[int]:
        """Submit `text` split as smpplib splits it (UDH parts); the sequence of each part."""
        parts, coding, esm_class = smpplib.gsm.make_parts(text)
        sequences = []
        for part in parts:
            pdu = self.client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr="crm",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                destination_addr=to.lstrip("+"),
                short_message=part,
                data_coding=coding,
                esm_class=esm_class,
                registered_delivery=registered_delivery,
            )
            sequences.append(pdu.sequence)
        return sequences

    def pump_until(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        """Read PDUs (answering deliver_sm) until probe() gives something."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found is not None and found is not False:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            with contextlib.suppress(TimeoutError):  # smpplib's socket timeout: read again
                self.client.read_once()

    def message_ids(self, sequences: list[int], timeout: float = 30) -> list[str]:
        def done() -> list[str] | None:
            if all(s in self.ids or s in self.errors for s in sequences):
                return [self.ids.get(s, "") for s in sequences]
            return None

        return self.pump_until(done, timeout, "submit_sm_resp")

    def receipts(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        for r in self.received:
            if r.is_receipt and r.receipted_message_id is not None:
                out.setdefault(r.receipted_message_id, []).append(r)
        return out

    def close(self) -> None:
        if self.client is None:
            return
        with contextlib.suppress(Exception):  # an unbind to a dead server: the socket goes anyway
            self.client.unbind()
        self.client.disconnect()
        self.client = None
