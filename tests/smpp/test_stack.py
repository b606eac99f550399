"""Acceptance: a third-party SMPP client (smpplib) against the real server, agent and emulator.

One gateway for the module (server with --smpp-port, one emulated dual-SIM modem, the agent);
the tests run in file order and each leaves the gateway as it found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import sqlite3
import struct
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from simhive.server.smpp.pdu import Cmd, Pdu, encode
from tests.smpp.esme import Esme
from tests.support.procs import free_port
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration

LONG = (
    "simhive splits long texts into parts on the SIM side again, so this message arrives in "
    "three parts at the server, is stored once, and leaves the modem as one concatenated "
    "SMS of three segments; each part submitted over SMPP still gets its own message id and "
    "its own delivery receipt, exactly as an SMSC would hand them out to the ESME. The end."
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    port = free_port()
    # One AT port per SIM: an SMS to either SIM arrives at once. On a single-port dual-SIM
    # modem one to the SIM not in use waits in the network until the agent's next visit (up
    # to a minute), which is the agent's story, not SMPP's.
    gw = GatewayStack(tmp_path_factory.mktemp("smpp"), device_settings=FAST_PACING,
                      dual_sim="ports", server_args=["--smpp-port", str(port)])  # fmt: skip
    gw.smpp_port = port  # type: ignore[attr-defined]
    try:
        gw.start()
        made = gw.cli("key", "create", "--email", gw.email, "--name", "crm", "--scope", "send",
                      "--scope", "read", "--rate-per-minute", "100000", "--smpp",
                      "--smpp-system-id", "crm")  # fmt: skip
        gw.smpp_password = str(made["smpp_password"])  # type: ignore[attr-defined]
        gw.wait_agent_ready()
        yield gw
    except BaseException:
        print(gw.logs(6000))
        raise
    finally:
        gw.close()


def esme(stack: GatewayStack) -> Esme:
    return Esme(stack.smpp_port, "crm", stack.smpp_password)  # type: ignore[attr-defined]


def outbox(stack: GatewayStack) -> list[tuple[str, str, int]]:
    """(smpp_id, state, attempts) of every receipt row, read-only from the server's database."""
    with contextlib.closing(sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT smpp_id, state, attempts FROM smpp_outbox WHERE kind = 'receipt' ORDER BY id"
        ).fetchall()
    return [(str(a), str(b), int(c)) for a, b, c in rows]


def messages_of(stack: GatewayStack, smpp_ids: list[str]) -> list[int]:
    """The sms_id each submitted id points at, read-only from the server's database."""
    with contextlib.closing(sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)) as db:
        return [
            int(db.execute("SELECT sms_id FROM smpp_submits WHERE smpp_id = ?", (i,)).fetchone()[0])
            for i in smpp_ids
        ]


def modem_texts(stack: GatewayStack) -> list[str]:
    """Whole texts the emulated modem sent: parts of one concatenated SMS joined."""
    whole: list[str] = []
    parts: dict[object, dict[int, str]] = {}
    for sms in stack.submitted():
        if sms["parts"] == 1:
            whole.append(sms["text"])
            continue
        got = parts.setdefault((sms["slot"], sms["concat_reference"]), {})
        got[sms["part"]] = sms["text"]
        if len(got) == sms["parts"]:
            whole.append("".join(got[i] for i in sorted(got)))
    return whole


def test_send_gsm7_ucs2_and_three_parts_and_get_receipts(stack: GatewayStack) -> None:
    to = "+4915752982212"
    client = esme(stack).bind("transceiver")
    try:
        sequences = {
            "gsm": client.send_text(to, "Hello from SMPP @ 10€"),
            "ucs2": client.send_text(to, "Привет, SMPP! 👋"),
            "long": client.send_text(to, LONG),
        }
        assert len(sequences["long"]) == 3
        ids = {k: client.message_ids(v) for k, v in sequences.items()}
        assert all(ids.values()) and not client.errors
        every = [i for v in ids.values() for i in v]
        assert len(set(every)) == 5

        # The modem sent each message once, as the whole text.
        wanted = ["Hello from SMPP @ 10€", "Привет, SMPP! 👋", LONG]

        def at_the_modem() -> list[str] | None:
            texts = [t for t in modem_texts(stack) if t in wanted]
            return texts if len(texts) >= 3 else None

        texts = wait_until(at_the_modem, 60, "three messages at the emulator")
        assert sorted(texts) == sorted(wanted)

        # A receipt per submitted id, DELIVRD, naming the id in text and TLV.
        receipts = client.pump_until(
            lambda: r if set(r := client.receipts()) >= set(every) else None, 90, "receipts"
        )
        for message_id in every:
            got = receipts[message_id]
            assert len(got) == 1
            text = got[0].text
            assert text.startswith(f"id:{message_id} sub:001 dlvrd:001 submit date:")
            assert " stat:DELIVRD err:000 text:" in text
            assert got[0].message_state == 2
        # The whole messages are visible through the compat API as delivered; the three part
        # ids all lead to the one message their text was stored as.
        for message_id in ids["gsm"] + ids["ucs2"]:
            assert stack.status(int(message_id)) == 7
        (whole,) = set(messages_of(stack, ids["long"]))
        assert stack.status(whole) == 7 and whole not in {int(i) for i in every if i.isdigit()}
    finally:
        client.close()


def test_incoming_sms_reaches_a_receiver(stack: GatewayStack) -> None:
    client = esme(stack).bind("receiver")
    try:
        sender = "+4930123456789"
        stack.emu.send_sms(sender, stack.devices[0].number(0), "Antwort: ja, gerne")

        def mo() -> object:
            return next((r for r in client.received if not r.is_receipt), None)

        got = client.pump_until(mo, 60, "the incoming SMS as deliver_sm")
        assert got.text == "Antwort: ja, gerne"  # type: ignore[attr-defined]
        assert got.source_addr == sender.lstrip("+")  # type: ignore[attr-defined]
        sim_number = stack.devices[0].number(0).lstrip("+")
        assert got.destination_addr == sim_number  # type: ignore[attr-defined]
    finally:
        client.close()


def test_receipt_pending_through_kill9_arrives_once_after_reconnect(stack: GatewayStack) -> None:
    client = esme(stack).bind("transmitter")  # a transmitter gets no deliver_sm
    (sequence,) = client.send_text("+4915752982213", "receipt across a crash")
    (message_id,) = client.message_ids([sequence])
    client.close()
    # The message is delivered and its receipt waits in the outbox: nobody is bound to take it.
    wait_until(lambda: (message_id, "pending", 0) in outbox(stack), 60, "the pending receipt")

    assert stack.server is not None
    stack.server.kill9()
    stack.start_server()

    client = esme(stack).bind("transceiver")
    try:
        client.pump_until(lambda: client.receipts().get(message_id), 30, "the receipt")
        # Then one more round trip with a receipt of its own: anything sent twice would have
        # come before it (receipts leave in outbox order, one session).
        (later,) = client.message_ids(client.send_text("+4915752982213", "after the crash"))
        client.pump_until(lambda: client.receipts().get(later), 60, "the later receipt")
        assert len(client.receipts()[message_id]) == 1
        wait_until(lambda: (message_id, "delivered", 1) in outbox(stack), 30, "acknowledged")
    finally:
        client.close()


def test_hostile_peers_do_not_hurt_anyone(stack: GatewayStack) -> None:
    port = stack.smpp_port  # type: ignore[attr-defined]
    good = esme(stack).bind("transceiver")
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"hostile payloads from random.Random({seed})")  # shown if the test fails
    rng = random.Random(seed)
    hostile: list[socket.socket] = []
    try:
        payloads = _hostile_payloads(rng)
        for payload in payloads:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(payload)
            hostile.append(s)  # some stay open, silent: the slow-peer case
        # The good session still works while they hang around.
        (sequence,) = good.send_text("+4915752982214", "still here", registered_delivery=0)
        assert good.message_ids([sequence])[0]
        assert stack.server is not None and stack.server.alive()
        with urllib.request.urlopen(f"{stack.url}/health", timeout=10) as resp:
            assert resp.status == 200
        assert stack.api("getallsms")["error"] == 0
        # A new session binds and sends too.
        other = esme(stack).bind("transmitter")
        (sequence,) = other.send_text("+4915752982214", "me too", registered_delivery=0)
        assert other.message_ids([sequence])[0]
        other.close()
    finally:
        for s in hostile:
            s.close()
        good.close()
    assert stack.server.alive()


def _hostile_payloads(rng: random.Random) -> list[bytes]:
    bind = encode(Pdu(Cmd.BIND_TRANSCEIVER, 1, 0, {"system_id": "crm", "password": "x"}))
    submit = encode(Pdu(Cmd.SUBMIT_SM, 2, 0, {"destination_addr": "1", "short_message": b"x"}))
    out = [
        b"",  # connect and say nothing
        struct.pack(">I", 0xFFFFFFFF),  # half a header claiming 4 GiB
        struct.pack(">IIII", 0x7FFFFFFF, Cmd.SUBMIT_SM, 0, 1),  # oversized length
        struct.pack(">IIII", 3, Cmd.ENQUIRE_LINK, 0, 1),  # shorter than a header
        struct.pack(">IIII", 16, 0x0BADC0DE, 0, 1),  # unknown command
        bind[: len(bind) // 2],  # truncated bind, then silence
        bind + submit[:-3],  # a wrong bind, then a truncated submit
        struct.pack(">IIII", 40, Cmd.SUBMIT_SM, 0, 5) + b"\xff" * 24,  # garbage body
    ]
    out += [rng.randbytes(rng.randint(1, 400)) for _ in range(20)]
    for _ in range(10):  # valid framing around random bodies of every command
        command = rng.choice(list(Cmd))
        body = rng.randbytes(rng.randint(0, 80))
        out.append(struct.pack(">IIII", 16 + len(body), command, 0, rng.randint(1, 99)) + body)
    return out


async def test_a_second_client_aiosmpplib_packed_gsm7_and_receipts(stack: GatewayStack) -> None:
    """aiosmpplib, written independently of smpplib: GSM-7 sent packed, UCS-2, and receipts read
    with its own receipt parser."""
    from aiosmpplib import (
        ESME,
        NPI,
        TON,
        AbstractHook,
        DeliverSm,
        PhoneNumber,
        SmppMessage,
        SubmitSm,
        SubmitSmResp,
    )

    got: list[SmppMessage] = []

    class Hook(AbstractHook):  # type: ignore[misc]
        async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
            pass

        async def received(self, smpp_message: SmppMessage | None, pdu: bytes,
                           client_id: str) -> None:  # fmt: skip
            if smpp_message is not None:
                got.append(smpp_message)

        async def send_error(self, smpp_message: SmppMessage, error: Exception,
                             client_id: str) -> None:  # fmt: skip
            raise AssertionError(f"aiosmpplib could not send {smpp_message}: {error!r}")

    client = ESME("127.0.0.1", stack.smpp_port, "crm", stack.smpp_password,  # type: ignore[attr-defined]
                  hook=Hook(), log_level="WARNING")  # fmt: skip
    running = asyncio.create_task(client.start())
    # (text, encoding): packed GSM-7 chosen explicitly; None lets the client pick (UCS-2 here).
    texts = {"packed": ("Packed GSM-7 from aiosmpplib", "gsm0338_packed"),
             "ucs2": ("Ünïcødé 日本", None)}  # fmt: skip
    try:
        to = PhoneNumber("4915752982215", TON.INTERNATIONAL, NPI.ISDN)
        for key, (text, encoding) in texts.items():
            await client.broker.enqueue(SubmitSm(short_message=text, source=PhoneNumber("crm"),
                                                 destination=to, log_id=key,
                                                 encoding=encoding))  # fmt: skip

        async def until(probe: Callable[[], object], what: str) -> None:
            for _ in range(900):
                if probe():
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"aiosmpplib: no {what}; got {got}")

        def ids() -> list[str]:
            return [m.message_id for m in got if isinstance(m, SubmitSmResp) and m.message_id]

        await until(lambda: len(ids()) == 2, "submit_sm_resp")

        def receipts() -> dict[str, dict[str, object]]:
            parsed = [m.parse_receipt() for m in got if isinstance(m, DeliverSm)]
            return {str(r["id"]): r for r in parsed if r}

        await until(lambda: set(ids()) <= set(receipts()), "receipts")
        for message_id in ids():
            receipt = receipts()[message_id]
            assert (receipt["stat"], receipt["dlvrd"], receipt["err"]) == ("DELIVRD", 1, 0)
        sent = await asyncio.to_thread(modem_texts, stack)
        assert {text for text, _ in texts.values()} <= set(sent)
    finally:
        await client.stop()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
