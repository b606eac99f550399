"""The virtual network in-process: routing, storage, status reports, rules, concatenation."""

from __future__ import annotations

import re

import pytest

from simhive.agent.modem import pdu
from simhive.hardware.emulator.network import NetworkError

from .harness import Port, Rig


async def _send(port: Port, number: str, text: str, **kw: object) -> list[int]:
    refs = []
    for part in pdu.encode_submit(number, text, **kw):  # type: ignore[arg-type]
        out = await port.send_pdu(part.tpdu_length, part.hex)
        m = re.search(r"\+CMGS: (\d+)", out)
        assert m, out
        refs.append(int(m.group(1)))
    return refs


async def test_stored_delivery_and_ds1_report(rig: Rig) -> None:
    a, b = rig.add(), rig.add()
    await rig.start()
    pa, pb = rig.port("m1"), rig.port("m2")
    for p in (pa, pb):
        await p.cmd("ATE0;+CMEE=1;+CNMI=2,1,0,1,0")
    refs = await _send(pa, b.sims[0].sim.number, "stored please")
    assert '+CMTI: "SM",1' in await pb.urc(r"\+CMTI: [^\r]*\r\n")
    read = await pb.cmd("AT+CMGR=1")
    hex_pdu = read.split("\r\n")[3]
    deliver = pdu.decode_incoming(bytes.fromhex(hex_pdu))
    assert isinstance(deliver, pdu.Deliver)
    assert (deliver.sender, deliver.text) == (a.sims[0].sim.number, "stored please")
    assert read.startswith("\r\n+CMGR: 0,,")  # unread on first read...
    assert (await pb.cmd("AT+CMGR=1")).startswith("\r\n+CMGR: 1,,")  # ...read afterwards
    cds = await pa.urc(r"\+CDS: \d+\r\n[0-9A-F]+\r\n")
    report = pdu.decode_incoming(bytes.fromhex(cds.strip().split("\r\n")[-1]))
    assert isinstance(report, pdu.StatusReport)
    assert (report.message_reference, report.recipient, report.status) == (
        refs[0],
        b.sims[0].sim.number,
        0,
    )
    record = rig.network.submitted[0]
    assert record.delivered and record.report_status == 0


async def test_ds2_report_stored_in_sr(rig: Rig) -> None:
    rig.add()
    b = rig.add()
    await rig.start()
    pa = rig.port("m1")
    await pa.cmd("ATE0;+CMEE=1;+CNMI=2,1,0,2,0")
    refs = await _send(pa, b.sims[0].sim.number, "report to SR")
    assert '+CDSI: "SR",1' in await pa.urc(r"\+CDSI: [^\r]*\r\n")
    await pa.cmd('AT+CPMS="SR","SM","SM"')
    listing = await pa.cmd("AT+CMGL=4")
    hex_pdu = listing.split("\r\n")[3]
    report = pdu.decode_incoming(bytes.fromhex(hex_pdu))
    assert isinstance(report, pdu.StatusReport) and report.message_reference == refs[0]
    await pa.cmd("AT+CMGD=1")
    assert "+CPMS: 0,20" in await pa.cmd('AT+CPMS="SR"')


async def test_no_report_without_srr_or_with_ds0(rig: Rig) -> None:
    rig.add()
    b = rig.add()
    await rig.start()
    pa = rig.port("m1")
    await pa.cmd("ATE0;+CNMI=2,1,0,1,0")
    await _send(pa, b.sims[0].sim.number, "no report", status_report=False)
    await pa.cmd("AT+CNMI=2,1,0,0,0")
    await _send(pa, b.sims[0].sim.number, "dropped report")
    await pa.cmd("AT")
    assert "+CDS" not in pa.wire.take().decode()
    assert (
        rig.network.submitted[1].report_status == 0
    )  # the network did report; the modem dropped it


async def test_list_read_delete(rig: Rig) -> None:
    b = rig.add()
    await rig.start()
    pb = rig.port("m1")
    await pb.cmd("ATE0;+CMEE=1;+CNMI=2,1,0,0,0")
    for i in range(3):
        rig.network.inject("+4917000000", b.sims[0].sim.number, f"msg {i}")
    for i in range(1, 4):
        await pb.urc(f'\\+CMTI: "SM",{i}\r\n')
    assert "+CPMS: " in await pb.cmd("AT+CPMS?")
    assert '"SM",3,30' in await pb.cmd("AT+CPMS?")
    unread = await pb.cmd("AT+CMGL=0")
    assert unread.count("+CMGL:") == 3
    assert (await pb.cmd("AT+CMGL=0")).count("+CMGL:") == 0  # listing marked them read
    assert (await pb.cmd("AT+CMGL=1")).count("+CMGL:") == 3
    await pb.cmd("AT+CMGD=2")
    assert "+CMS ERROR: 321" in await pb.cmd("AT+CMGR=2")
    assert "+CMGD: (1,3),(0-4)" in await pb.cmd("AT+CMGD=?")
    await pb.cmd("AT+CMGD=1,4")
    assert (await pb.cmd("AT+CMGL=4")).count("+CMGL:") == 0


async def test_full_storage_holds_until_space(rig: Rig) -> None:
    b = rig.add()
    await rig.start()
    pb = rig.port("m1")
    await pb.cmd("ATE0;+CMEE=1;+CNMI=2,1,0,0,0")
    memory = b.sims[0].storage["SM"]
    memory.capacity = 2
    for i in range(3):
        rig.network.inject("+4917000000", b.sims[0].sim.number, f"msg {i}")
    await pb.urc('\\+CMTI: "SM",2\r\n')
    assert rig.network.pending_count() == 1
    assert "+CMS ERROR: 322" in await pb.cmd("AT+CMGW=20")
    await pb.cmd("AT+CMGD=1")
    assert '+CMTI: "SM",1' in await pb.urc(r"\+CMTI: [^\r]*\r\n")
    assert memory.get(1) is not None and memory.get(1).text == "msg 2"  # type: ignore[union-attr]
    assert rig.network.pending_count() == 0


async def test_multipart_passes_through_as_parts(rig: Rig) -> None:
    rig.add()
    b = rig.add()
    await rig.start()
    pa, pb = rig.port("m1"), rig.port("m2")
    await pa.cmd("ATE0")
    await pb.cmd("ATE0;+CNMI=2,1,0,0,0")
    text = "Grüße aus dem Emulator 🙂 " * 6  # 156 UTF-16 units: three UCS2 parts
    refs = await _send(pa, b.sims[0].sim.number, text, concat_reference=77)
    assert len(refs) == 3
    for i in range(1, 4):
        await pb.urc(f'\\+CMTI: "SM",{i}\r\n')
    parts = []
    for i in range(1, 4):
        out = await pb.cmd(f"AT+CMGR={i}")
        deliver = pdu.decode_incoming(bytes.fromhex(out.split("\r\n")[3]))
        assert isinstance(deliver, pdu.Deliver) and deliver.concat is not None
        assert (deliver.concat.reference, deliver.concat.total) == (77, 3)
        assert deliver.coding is pdu.Coding.UCS2
        parts.append((deliver.concat.seq, deliver.text))
    assert "".join(t for _, t in sorted(parts)) == text
    assert [s.part for s in rig.network.submitted] == [1, 2, 3]
    assert {s.parts for s in rig.network.submitted} == {3}


async def test_external_numbers_by_rule(rig: Rig) -> None:
    rig.add()
    await rig.start()
    pa = rig.port("m1")
    await pa.cmd("ATE0;+CNMI=2,1,0,1,0")
    rig.network.configure(
        {
            "rules": [
                {"pattern": "+1*", "outcome": "failed"},
                {"pattern": "+44*", "outcome": "none"},
                {"pattern": "+33*", "outcome": "delivered", "status": 2},
            ]
        }
    )
    for number, expect in (("+15551234567", 0x41), ("+4930123456", 0), ("+33612345678", 2)):
        await _send(pa, number, "out")
        cds = await pa.urc(r"\+CDS: \d+\r\n[0-9A-F]+\r\n")
        report = pdu.decode_incoming(bytes.fromhex(cds.strip().split("\r\n")[-1]))
        assert isinstance(report, pdu.StatusReport)
        assert (report.recipient, report.status) == (number, expect)
    await _send(pa, "+447700900123", "never reported")
    await pa.cmd("AT")
    assert "+CDS" not in pa.wire.take().decode()
    with pytest.raises(NetworkError):
        rig.network.configure({"rules": [{"pattern": "*", "outcome": "maybe"}]})
    with pytest.raises(NetworkError):
        rig.network.configure({"report_delay": -1})


async def test_report_delay(rig: Rig) -> None:
    rig.add()
    await rig.start()
    pa = rig.port("m1")
    await pa.cmd("ATE0;+CNMI=2,1,0,1,0")
    rig.network.configure({"report_delay": 0.3})
    await _send(pa, "+4930123456", "later")
    await pa.cmd("AT")
    assert "+CDS" not in pa.wire.take().decode()  # the report cannot be due yet
    assert "+CDS:" in await pa.urc(r"\+CDS: \d+\r\n[0-9A-F]+\r\n")


async def test_inject_validation(rig: Rig) -> None:
    rig.add()
    await rig.start()
    with pytest.raises(NetworkError):
        rig.network.inject("+4917000000", "+4900000000", "nobody")
    with pytest.raises(NetworkError):
        rig.network.inject("+4917000000", rig.modems[0].sims[0].sim.number, "")
    long = rig.network.inject("ACME", rig.modems[0].sims[0].sim.number, "x" * 400)
    assert long["parts"] == 3  # alphanumeric sender, three 153-septet parts


async def test_csms1_direct_delivery_needs_cnma(rig: Rig) -> None:
    b = rig.add()
    await rig.start()
    port = rig.port("m1")
    rig.network.configure({"ack_timeout": 0.3})
    await port.cmd("ATE0;+CMEE=1")
    assert "+CMS ERROR: 340" in await port.cmd("AT+CNMA")  # nothing to acknowledge
    assert "+CSMS: 1,1,1" in await port.cmd("AT+CSMS=1")
    await port.cmd("AT+CNMI=2,2,0,0,0")
    rig.network.inject("+4917000000", b.sims[0].sim.number, "ack me")
    await port.urc(r"\+CMT: ,\d+\r\n[0-9A-F]+\r\n")
    assert await port.cmd("AT+CNMA") == "\r\nOK\r\n"
    rig.network.inject("+4917000000", b.sims[0].sim.number, "ignored")
    first = await port.urc(r"\+CMT: ,\d+\r\n[0-9A-F]+\r\n")
    again = await port.urc(r"\+CMT: ,\d+\r\n[0-9A-F]+\r\n", 5)  # no ack: the network repeats it
    assert first.strip() == again.strip()
    assert await port.cmd("AT+CNMA") == "\r\nOK\r\n"


async def test_unreachable_recipient_expires_after_hold_limit(rig: Rig) -> None:
    rig.add()
    b = rig.add()
    await rig.start()
    pa = rig.port("m1")
    await pa.cmd("ATE0;+CNMI=2,1,0,1,0")
    rig.network.configure({"hold_limit": 0.3})
    b.apply_faults({"no_network": True})
    refs = await _send(pa, b.sims[0].sim.number, "you will never get this")
    cds = await pa.urc(r"\+CDS: \d+\r\n[0-9A-F]+\r\n", 5)
    report = pdu.decode_incoming(bytes.fromhex(cds.strip().split("\r\n")[-1]))
    assert isinstance(report, pdu.StatusReport)
    assert (report.message_reference, report.status) == (refs[0], 0x46)  # validity expired
    assert rig.network.pending_count() == 0
    b.apply_faults({"no_network": False})
    assert b.sims[0].storage["SM"].used == 0 and not rig.network.submitted[0].delivered


@pytest.mark.parametrize("offset", [60, -330])
async def test_sc_timestamps_in_the_smsc_time_zone(rig: Rig, offset: int) -> None:
    from datetime import UTC, datetime, timedelta

    b = rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CNMI=2,1,0,0,0")
    rig.network.configure({"sc_utc_offset": offset})
    rig.network.inject("+4917000000", b.sims[0].sim.number, "what time is it")
    await port.urc(r"\+CMTI: [^\r]*\r\n")
    deliver = pdu.decode_incoming(bytes.fromhex((await port.cmd("AT+CMGR=1")).split("\r\n")[3]))
    assert isinstance(deliver, pdu.Deliver)
    assert deliver.sc_timestamp.utcoffset() == timedelta(minutes=offset)
    assert abs(deliver.sc_timestamp - datetime.now(UTC)) < timedelta(seconds=30)
    await port.cmd("AT+CMGF=1")
    assert f'{offset // 15:+03d}"' in await port.cmd("AT+CMGR=1")  # quarter hours in text mode
    with pytest.raises(NetworkError):
        rig.network.configure({"sc_utc_offset": 7})


def test_submit_latency_with_jitter() -> None:
    from simhive.hardware.emulator.network import Network

    net = Network(latency=3.0)
    assert net.submit_latency(None) == 3.0 and net.submit_latency(0.5) == 0.5
    net.configure({"latency_jitter": 2.0})
    samples = [net.submit_latency(None) for _ in range(500)]
    assert all(1.0 <= s <= 5.0 for s in samples)
    assert max(samples) - min(samples) > 3.0  # spread over the range, not a constant
    net.configure({"latency": 0.5})
    assert min(net.submit_latency(None) for _ in range(200)) == 0.0  # clamped, never negative
    assert net.submit_latency(1.25) == 1.25  # a modem's latency fault is exact


async def test_write_then_send_from_storage(rig: Rig) -> None:
    rig.add()
    b = rig.add()
    await rig.start()
    pa, pb = rig.port("m1"), rig.port("m2")
    await pa.cmd("ATE0;+CMEE=1")
    await pb.cmd("ATE0;+CNMI=2,1,0,0,0")
    part = pdu.encode_submit(b.sims[0].sim.number, "stored first", status_report=False)[0]
    pa.session.feed(f"AT+CMGW={part.tpdu_length}\r".encode())
    await pa.wire.expect(b"> ")
    pa.session.feed(part.hex.encode() + b"\x1a")
    assert "+CMGW: 1" in (await pa.wire.expect(b"OK\r\n")).decode()
    assert "+CMSS: 1" in await pa.cmd("AT+CMSS=1")
    assert await pb.urc(r'\+CMTI: "SM",1\r\n')
    assert "+CMGL: 1,3," in await pa.cmd("AT+CMGL=4")  # now "stored sent"
    assert "+CMSS: 2" in await pa.cmd('AT+CMSS=1,"+4930123456"')  # to another number
    assert [r.destination for r in rig.network.submitted] == [
        b.sims[0].sim.number,
        "+4930123456",
    ]
    assert {r.mode for r in rig.network.submitted} == {"stored"}
    assert "+CMS ERROR: 321" in await pa.cmd("AT+CMSS=9")


async def test_csms1_holds_the_next_direct_report_until_the_last_one_is_acknowledged(
    rig: Rig,
) -> None:
    # 27.005 +CNMA: one direct delivery awaits its acknowledgement at a time, so an AT+CNMA
    # acknowledges the report the client saw, never one printed to a port nobody read (a
    # restarted agent's acknowledgement used to take away the repeat of a lost one).
    rig.add()
    await rig.start()
    pa = rig.port("m1")
    rig.network.configure({"ack_timeout": 30})
    await pa.cmd("ATE0;+CMEE=1;+CSMS=1;+CNMI=2,1,0,1,0")
    first = await _send(pa, "+4930123456", "one")
    seen = await pa.urc(r"\+CDS: \d+\r\n[0-9A-F]+\r\n")
    second = await _send(pa, "+4930123456", "two")
    await pa.cmd("AT")
    assert "+CDS" not in pa.wire.take().decode()  # held by the network, not printed
    assert await pa.cmd("AT+CNMA") == "\r\nOK\r\n"
    then = await pa.urc(r"\+CDS: \d+\r\n[0-9A-F]+\r\n")
    refs = [
        pdu.decode_incoming(bytes.fromhex(c.strip().split("\r\n")[-1])).message_reference  # type: ignore[union-attr]
        for c in (seen, then)
    ]
    assert refs == [first[0], second[0]]
    assert await pa.cmd("AT+CNMA") == "\r\nOK\r\n"
