"""The SMPP server in-process: binds, submits into pools, query/cancel, receipts and incoming SMS
from the durable outbox, limits and error statuses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from simhive.server.core.dates import now_us
from simhive.server.core.gateway import Outgoing
from simhive.server.core.keys import new_smpp_password
from simhive.server.core.models import MessageFilter
from simhive.server.core.status import Status as Sms
from simhive.server.smpp import times
from simhive.server.smpp.pdu import Cmd, MessageState, Pdu, Status, Tag, encode
from simhive.server.smpp.text import Concat, sar_tlvs
from tests.smpp.conftest import RawClient, Smpp, stop_smpp

TO = "+4915752982212"


async def submit(client: RawClient, text: bytes = b"hello", **fields: object) -> tuple[int, str]:
    tlvs = fields.pop("tlvs", None)
    values: dict[str, object] = {"destination_addr": TO, "short_message": text, **fields}
    answer = await client.call(Cmd.SUBMIT_SM, tlvs, **values)  # type: ignore[arg-type]
    return answer.status, answer.text("message_id")


async def test_bind_modes_and_wrong_credentials(smpp: Smpp) -> None:
    for command in (Cmd.BIND_TRANSMITTER, Cmd.BIND_RECEIVER, Cmd.BIND_TRANSCEIVER):
        client = await smpp.connect()
        answer = await client.call(command, system_id="crm", password=smpp.password)
        assert answer.command_id == command | 0x80000000 and answer.status == 0
        assert answer.text("system_id") == "simhive"
        assert answer.tlv_int(Tag.SC_INTERFACE_VERSION) == 0x34
        again = await client.call(command, system_id="crm", password=smpp.password)
        assert again.status == Status.RALYBND
    wrong = await (await smpp.connect()).call(Cmd.BIND_TRANSCEIVER, system_id="crm",
                                              password="nope")  # fmt: skip
    assert wrong.status == Status.RINVPASWD
    unknown = await (await smpp.connect()).call(Cmd.BIND_TRANSCEIVER, system_id="ghost",
                                                password=smpp.password)  # fmt: skip
    assert unknown.status == Status.RINVPASWD
    # The key's own secret binds as well (clients that allow longer passwords); the account's
    # email and compat token are no SMPP credential.
    by_secret = await (await smpp.connect()).call(
        Cmd.BIND_TRANSMITTER, system_id="CRM", password=smpp.secret
    )
    assert by_secret.status == 0
    by_token = await (await smpp.connect()).call(
        Cmd.BIND_TRANSMITTER, system_id=smpp.account.email, password=smpp.token
    )
    assert by_token.status == Status.RINVPASWD


async def test_failed_binds_are_throttled_like_logins(smpp: Smpp) -> None:
    statuses = []
    for _ in range(12):  # a new connection each time, as a guessing client would
        client = await smpp.connect()
        answer = await client.call(Cmd.BIND_TRANSCEIVER, system_id="crm", password="wrong")
        statuses.append(answer.status)
    assert statuses[:10] == [Status.RINVPASWD] * 10
    assert statuses[10:] == [Status.RBINDFAIL] * 2
    # Locked for this system_id from this address: even the right password is refused now.
    right = await client.call(Cmd.BIND_TRANSCEIVER, system_id="crm", password=smpp.password)
    assert right.status == Status.RBINDFAIL


async def test_requests_before_bind_are_refused(smpp: Smpp) -> None:
    client = await smpp.connect()
    status, _ = await submit(client)
    assert status == Status.RINVBNDSTS
    assert (await client.call(Cmd.ENQUIRE_LINK)).command_id == Cmd.ENQUIRE_LINK_RESP
    receiver = await smpp.bound(Cmd.BIND_RECEIVER)
    status, _ = await submit(receiver)
    assert status == Status.RINVBNDSTS


async def test_submit_stores_a_pool_message(smpp: Smpp) -> None:
    client = await smpp.bound()
    status, message_id = await submit(client, "Grüße".encode("utf-16-be"), data_coding=8)
    assert status == 0
    message = await smpp.gateway.message(smpp.account, int(message_id))
    assert (message.body, message.sendto, message.pool) == ("Grüße", TO, "all")
    # TON 1 (international) without "+", and a schedule time.
    status, message_id = await submit(
        client, dest_addr_ton=1, destination_addr="4915752982212",
        schedule_delivery_time="000000010000000R",
    )  # fmt: skip
    later = await smpp.gateway.message(smpp.account, int(message_id))
    assert later.sendto == TO and later.timetosend is not None
    assert later.timetosend > later.created + 3000 * 10**6


async def test_submit_errors_have_their_statuses(smpp: Smpp) -> None:
    client = await smpp.bound()
    cases: list[tuple[dict[str, object], int]] = [
        ({"destination_addr": ""}, Status.RINVDSTADR),
        ({"destination_addr": "12,34"}, Status.RINVDSTADR),
        ({"destination_addr": "not a number"}, Status.RINVDSTADR),
        ({"service_type": "nope"}, Status.RINVSERTYP),
        ({"registered_delivery": 3}, Status.RINVREGDLVFLG),
        ({"schedule_delivery_time": "tomorrow"}, Status.RINVSCHED),
        ({"validity_period": "000000000000000X"}, Status.RINVEXPIRY),
        ({"data_coding": 4}, Status.RSUBMITFAIL),
        ({"short_message": b""}, Status.RINVMSGLEN),
        ({"esm_class": 0x40, "short_message": b"\x09\x00"}, Status.RINVESMCLASS),
    ]
    for fields, wanted in cases:
        status, _ = await submit(client, **fields)  # type: ignore[arg-type]
        assert status == wanted, fields
    # Nothing of that was stored.
    assert await smpp.gateway.count_messages(_all(smpp)) == 0


def _all(smpp: Smpp) -> MessageFilter:
    return MessageFilter(account_id=smpp.account.id)


async def test_service_type_and_credential_pool_choose_the_pool(smpp: Smpp) -> None:
    await smpp.gateway.routing.create(smpp.account, "otp")
    client = await smpp.bound()
    _, message_id = await submit(client, service_type="otp")
    assert (await smpp.gateway.message(smpp.account, int(message_id))).pool == "otp"
    password = new_smpp_password()
    await smpp.server.keys.create(smpp.account, "otp app", ["send"], smpp_system_id="otp-app",
                                  smpp_password=password, smpp_pool="otp")  # fmt: skip
    otp = await smpp.connect()
    answer = await otp.call(Cmd.BIND_TRANSMITTER, system_id="otp-app", password=password)
    assert answer.status == 0
    _, message_id = await submit(otp)
    assert (await smpp.gateway.message(smpp.account, int(message_id))).pool == "otp"
    _, message_id = await submit(otp, service_type="all")
    assert (await smpp.gateway.message(smpp.account, int(message_id))).pool == "all"


async def test_concatenated_parts_become_one_message(smpp: Smpp) -> None:
    client = await smpp.bound()
    ids = []
    for seq, chunk in ((1, b"Hello "), (3, b"parts!"), (2, b"from three ")):
        udh = bytes([5, 0, 3, 0x42, 3, seq])
        status, message_id = await submit(client, udh + chunk, esm_class=0x40,
                                          registered_delivery=1)  # fmt: skip
        assert status == 0
        ids.append(message_id)
    assert all(i.startswith("p") for i in ids) and len(set(ids)) == 3
    messages = await smpp.gateway.list_messages(_all(smpp))
    assert [m.body for m in messages] == ["Hello from three parts!"]
    # sar_* TLVs instead of a UDH, with the parts in their own order
    for seq, chunk in ((1, b"sar "), (2, b"works")):
        tlvs = sar_tlvs(Concat(0x1234, 2, seq))
        status, _ = await submit(client, chunk, tlvs=tlvs)
    messages = await smpp.gateway.list_messages(_all(smpp))
    assert sorted(m.body for m in messages) == ["Hello from three parts!", "sar works"]
    # Each part's id answers query_sm, and each gets its own receipt.
    sms_id = next(m.id for m in messages if m.body.startswith("Hello"))
    query = await client.call(Cmd.QUERY_SM, message_id=ids[0])
    assert query.status == 0 and query.num("message_state") == MessageState.ENROUTE
    await smpp.set_status(sms_id, Sms.DELIVERED)
    got = set()
    for _ in range(3):
        receipt = await client.deliver()
        await client.ack(receipt)
        got.add(receipt.tlv(Tag.RECEIPTED_MESSAGE_ID))
    assert got == {i.encode() + b"\0" for i in ids}


async def test_submit_multi(smpp: Smpp) -> None:
    client = await smpp.bound()
    dests = [(1, 1, 1, "4915752982212"), (2, 0, 0, "friends"), (1, 0, 0, "+4915752982213")]
    answer = await client.call(Cmd.SUBMIT_MULTI, dest_address=dests, short_message=b"hi all")
    assert answer.status == 0
    assert answer.fields["unsuccess_sme"] == [(Status.RINVDSTADR, 0, 0, "friends")]
    messages = await smpp.gateway.list_messages(_all(smpp))
    assert sorted(m.sendto for m in messages) == [TO, "+4915752982213"]
    assert str(min(m.id for m in messages)) == answer.text("message_id")


async def test_query_and_cancel(smpp: Smpp) -> None:
    client = await smpp.bound()
    _, first = await submit(client)
    _, second = await submit(client)
    query = await client.call(Cmd.QUERY_SM, message_id=first)
    assert (query.status, query.num("message_state"), query.text("final_date")) == (0, 1, "")
    await smpp.set_status(int(second), Sms.NOT_DELIVERED)
    query = await client.call(Cmd.QUERY_SM, message_id=second)
    assert query.num("message_state") == MessageState.UNDELIVERABLE
    assert query.num("error_code") == 8 and len(query.text("final_date")) == 16
    assert (await client.call(Cmd.CANCEL_SM, message_id=first)).status == 0
    assert (await client.call(Cmd.QUERY_SM, message_id=first)).status == Status.RQUERYFAIL
    assert (await client.call(Cmd.CANCEL_SM, message_id=first)).status == Status.RCANCELFAIL
    assert (await client.call(Cmd.CANCEL_SM, message_id=second)).status == Status.RCANCELFAIL
    assert (await client.call(Cmd.QUERY_SM, message_id="abc")).status == Status.RINVMSGID
    # Another account's message is unknown here.
    other, _ = await smpp.gateway.create_account("other@simhive.test", "password-123")
    (foreign,) = await smpp.gateway.send(
        other, Outgoing(sendto=TO, body="x", device_id=None, pool="all")
    )
    assert (await client.call(Cmd.QUERY_SM, message_id=str(foreign))).status == Status.RQUERYFAIL
    assert (await client.call(Cmd.CANCEL_SM, message_id=str(foreign))).status == (
        Status.RCANCELFAIL
    )


async def test_receipts_wait_for_an_ack_and_survive_reconnects(smpp: Smpp) -> None:
    client = await smpp.bound()
    _, wanted = await submit(client, registered_delivery=1)
    _, failures_only = await submit(client, registered_delivery=2)
    _, none = await submit(client)
    for message_id in (wanted, failures_only, none):
        await smpp.set_status(int(message_id), Sms.DELIVERED)
    receipt = await client.deliver()
    assert receipt.tlv(Tag.RECEIPTED_MESSAGE_ID) == wanted.encode() + b"\0"
    assert receipt.octets("short_message").startswith(f"id:{wanted} sub:001 dlvrd:001".encode())
    assert b"stat:DELIVRD err:000 text:hello" in receipt.octets("short_message")
    await client.close()  # never acknowledged
    again = await smpp.bound(Cmd.BIND_RECEIVER)
    receipt = await again.deliver()
    assert receipt.tlv(Tag.RECEIPTED_MESSAGE_ID) == wanted.encode() + b"\0"
    await again.ack(receipt)
    rows = await _wait(lambda: smpp.smpp_store.outbox_rows(smpp.account.id),
                       lambda rows: rows and rows[0]["state"] == "delivered")  # fmt: skip
    assert [(r["smpp_id"], r["state"]) for r in rows] == [(wanted, "delivered")]
    # A failure receipt for registered_delivery 2.
    _, failing = await submit(await smpp.bound(Cmd.BIND_TRANSMITTER), registered_delivery=2)
    await smpp.set_status(int(failing), Sms.FAILED)
    receipt = await again.deliver()
    assert b"stat:UNDELIV err:009" in receipt.octets("short_message")
    assert receipt.tlv_int(Tag.MESSAGE_STATE) == MessageState.UNDELIVERABLE


async def test_an_esme_error_answer_is_retried(smpp: Smpp) -> None:
    client = await smpp.bound()
    _, message_id = await submit(client, registered_delivery=1)
    await smpp.set_status(int(message_id), Sms.DELIVERED)
    receipt = await client.deliver()
    await client.ack(receipt, status=Status.RSYSERR)
    rows = await _wait(lambda: smpp.smpp_store.outbox_rows(smpp.account.id),
                       lambda rows: rows[0]["attempts"] == 1)  # fmt: skip
    assert rows[0]["state"] == "pending"


async def test_incoming_sms_go_to_receivers(smpp: Smpp) -> None:
    receiver = await smpp.bound(Cmd.BIND_RECEIVER)
    device, _ = await smpp.gateway.create_device(smpp.account, "box")
    await smpp.sql(
        "INSERT INTO messages(account_id, device_id, direction, sendto, body, sim, status,"
        " created, due, status_changed) VALUES (?, ?, 'in', ?, ?, 0, 5, 1, 1, 1)",
        (smpp.account.id, device.id, TO, "Привет from a phone"),
    )
    mo = await receiver.deliver()
    assert mo.num("esm_class") == 0 and mo.num("data_coding") == 8
    assert mo.octets("short_message").decode("utf-16-be") == "Привет from a phone"
    assert (mo.text("source_addr"), mo.num("source_addr_ton")) == (TO.lstrip("+"), 1)
    await receiver.ack(mo)
    await _wait(lambda: smpp.smpp_store.outbox_rows(smpp.account.id),
                lambda rows: rows[0]["state"] == "delivered")  # fmt: skip


async def test_rate_limit_answers_throttled(make_smpp: Callable[..., Awaitable[Smpp]]) -> None:
    smpp = await make_smpp(rate=3)
    try:
        client = await smpp.bound()
        sequences = [await client.send(Cmd.SUBMIT_SM, destination_addr=TO, short_message=b"x")
                     for _ in range(6)]  # fmt: skip
        statuses = [a.status for a in (await client.answers(sequences)).values()]
        assert statuses.count(0) == 3 and statuses.count(Status.RTHROTTLED) == 3
    finally:
        await stop_smpp(smpp)


async def test_session_and_bind_limits(make_smpp: Callable[..., Awaitable[Smpp]]) -> None:
    smpp = await make_smpp(max_sessions=3, binds_per_account=2)
    try:
        await smpp.bound()
        await smpp.bound()
        third = await smpp.connect()
        answer = await third.call(Cmd.BIND_TRANSCEIVER, system_id="crm", password=smpp.password)
        assert answer.status == Status.RBINDFAIL
        fourth = await smpp.connect()  # over max_sessions: closed at once
        assert await fourth.closed()
    finally:
        await stop_smpp(smpp)


async def test_unbind_answers_and_closes(smpp: Smpp) -> None:
    client = await smpp.bound()
    answer = await client.call(Cmd.UNBIND)
    assert answer.command_id == Cmd.UNBIND_RESP and answer.status == 0
    assert await client.closed()


async def test_a_client_that_never_binds_is_dropped(smpp: Smpp) -> None:
    client = await smpp.connect()
    assert await client.closed()  # after bind_timeout (1 s in these tests)


async def _wait(
    fetch: Callable[[], Awaitable[list[dict[str, object]]]],
    done: Callable[[list[dict[str, object]]], object],
) -> list[dict[str, object]]:
    for _ in range(200):
        rows = await fetch()
        if done(rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox never got there: {await fetch()}")


async def test_requests_beyond_the_window_are_throttled(
    make_smpp: Callable[..., Awaitable[Smpp]],
) -> None:
    smpp = await make_smpp(window=1)
    try:
        client = await smpp.bound()
        pdus = [
            encode(Pdu(Cmd.SUBMIT_SM, seq, 0, {"destination_addr": TO, "short_message": b"w"}))
            for seq in (101, 102)
        ]
        await client.write(b"".join(pdus))  # the second arrives while the first is stored
        answers = await client.answers([101, 102])
        assert (answers[101].status, answers[102].status) == (0, Status.RTHROTTLED)
        # Once the first is answered the window has room again.
        status, _ = await submit(client)
        assert status == 0
    finally:
        await stop_smpp(smpp)


async def test_validity_period_expires_untaken_messages(
    make_smpp: Callable[..., Awaitable[Smpp]],
) -> None:
    smpp = await make_smpp(expiry_check_seconds=0.05)
    try:
        client = await smpp.bound()
        # One absolute time for all three, so that they expire in the same check.
        one_second = times.absolute(now_us() + 1_000_000)
        _, lapsing = await submit(client, registered_delivery=1, validity_period=one_second)
        _, taken = await submit(client, registered_delivery=1, validity_period=one_second)
        _, quiet = await submit(client, validity_period=one_second)  # no receipt wanted
        await smpp.set_status(int(taken), Sms.TAKEN)  # a SIM took it in time
        receipt = await client.deliver()
        await client.ack(receipt)
        assert receipt.tlv(Tag.RECEIPTED_MESSAGE_ID) == lapsing.encode() + b"\0"
        assert receipt.tlv_int(Tag.MESSAGE_STATE) == MessageState.EXPIRED
        assert b"dlvrd:000" in receipt.octets("short_message")
        assert b"stat:EXPIRED" in receipt.octets("short_message")
        for gone in (lapsing, quiet):
            query = await client.call(Cmd.QUERY_SM, message_id=gone)
            assert (query.status, query.num("message_state")) == (0, MessageState.EXPIRED)
        remaining = await smpp.gateway.list_messages(_all(smpp))
        assert [m.id for m in remaining] == [int(taken)]
        # The taken one is no longer watched: its expiry was cleared, nothing else expires.
        assert await smpp.smpp_store.expire(10**18) == 0
    finally:
        await stop_smpp(smpp)


async def test_a_part_with_a_bad_destination_or_pool_is_refused_at_once(smpp: Smpp) -> None:
    client = await smpp.bound()
    udh = bytes([5, 0, 3, 0x21, 2, 1])
    status, _ = await submit(client, udh + b"x", esm_class=0x40, destination_addr="nope")
    assert status == Status.RINVDSTADR
    status, _ = await submit(client, udh + b"x", esm_class=0x40, service_type="nope")
    assert status == Status.RINVSERTYP
    assert await smpp.smpp_store.prune_parts(10**18) == 0  # nothing was kept of them
