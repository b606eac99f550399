"""The AT engine in-process: framing, echo, errors, the +CMGS prompt flow, settings."""

from __future__ import annotations

import asyncio

import pytest

from simhive.agent.modem import pdu
from simhive.hardware.emulator.engine import Kind, parse_call, split_args, split_commands

from .harness import Rig


def test_command_line_splitting() -> None:
    assert split_commands("E0V1+CMEE=1;+CMGF=0") == ["E0", "V1", "+CMEE=1", "+CMGF=0"]
    assert split_commands('+CPMS="SM","SM";+CNMI=2,1') == ['+CPMS="SM","SM"', "+CNMI=2,1"]
    assert split_commands('+CMGS="+49;1"') == ['+CMGS="+49;1"']  # ';' inside quotes stays
    assert split_commands("+IPR=115200;&W") == ["+IPR=115200", "&W"]
    assert split_commands("S0=0S7?") == ["S0=0", "S7?"]


def test_call_parsing() -> None:
    assert parse_call("+CNMI=?").kind is Kind.TEST
    assert parse_call("+CREG?").kind is Kind.READ
    assert parse_call("+CSQ").kind is Kind.EXEC
    call = parse_call('+CPMS="SM","ME"')
    assert (call.name, call.kind, call.args) == ("+CPMS", Kind.SET, ["SM", "ME"])
    assert parse_call("e1").name == "E" and parse_call("e1").raw == "1"
    assert parse_call("^ICCID?").name == "^ICCID"
    assert split_args('1,,"a,b"') == ["1", "", "a,b"]


async def test_echo_escape_and_noise(rig: Rig) -> None:
    rig.add()
    await rig.start()
    port = rig.port("m1")
    # Gammu opens with ESC CR: cancelled, nothing executed, only the CR echoed
    port.session.feed(b"\x1b\r")
    assert await port.cmd("AT") == "\rAT\r\r\nOK\r\n"
    assert await port.cmd("ATE0") == "ATE0\r\r\nOK\r\n"  # echoed while echo was still on
    assert await port.cmd("AT") == "\r\nOK\r\n"
    port.session.feed(b"hello junk\rATX\x08\r")  # a non-AT line is ignored; backspace edits
    assert (await port.wire.expect(b"OK\r\n")).decode() == "\r\nOK\r\n"
    assert await port.cmd("AT+NOSUCH") == "\r\nERROR\r\n"
    assert await port.cmd("ATE1") == "\r\nOK\r\n"
    assert await port.cmd("at") == "at\r\r\nOK\r\n"


async def test_cmee_modes(rig: Rig) -> None:
    rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0")
    rig.modems[0].faults.sim_missing = True
    assert (await port.cmd("AT+CPIN?")).endswith("\r\nERROR\r\n")
    await port.cmd("AT+CMEE=1")
    assert (await port.cmd("AT+CPIN?")).endswith("+CME ERROR: 10\r\n")
    await port.cmd("AT+CMEE=2")
    assert (await port.cmd("AT+CPIN?")).endswith("+CME ERROR: SIM not inserted\r\n")
    assert (await port.cmd("AT+CMEE?")) == "\r\n+CMEE: 2\r\n\r\nOK\r\n"


async def test_compound_line_stops_at_first_error(rig: Rig) -> None:
    rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0")
    out = await port.cmd("AT+CMGF=1;+CMGF=7;+CMGF=0")
    assert out.endswith("ERROR\r\n")
    assert "+CMGF: 1" in await port.cmd("AT+CMGF?")


async def test_identity_and_network_queries(rig: Rig) -> None:
    modem = rig.add("sim800c")
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CMEE=1")
    sim = modem.sims[0].sim
    assert modem.imei in await port.cmd("AT+CGSN")
    assert sim.imsi in await port.cmd("AT+CIMI")
    assert f"\r\n{sim.iccid}\r\n" in await port.cmd("AT+CCID")
    assert f'+CNUM: "","{sim.number}",145' in await port.cmd("AT+CNUM")
    assert f'+COPS: 0,0,"{sim.serving.name}",0' in await port.cmd("AT+COPS?")
    await port.cmd("AT+COPS=3,2")
    assert f'+COPS: 0,2,"{sim.serving.code}",0' in await port.cmd("AT+COPS?")
    assert f"+CSQ: {sim.csq},99" in await port.cmd("AT+CSQ")
    assert "+CREG: 0,1" in await port.cmd("AT+CREG?")
    await port.cmd("AT+CREG=2")
    assert '+CREG: 2,1,"04CA","81DE445"' in await port.cmd("AT+CREG?")
    assert "+CGATT: 1" in await port.cmd("AT+CGATT?")
    # EF_ICCID through restricted SIM access: nibble-swapped BCD
    swapped = "".join(sim.iccid[i + 1] + sim.iccid[i] for i in range(0, 20, 2))
    assert swapped in await port.cmd("AT+CRSM=176,12258,0,0,10")
    assert "+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)" in await port.cmd("AT+CNMI=?")
    assert (await port.cmd("AT+CNMI=2,9")).endswith("+CMS ERROR: 303\r\n")


def _submit(number: str, text: str, **kw: object) -> list[pdu.SubmitPdu]:
    return pdu.encode_submit(number, text, **kw)  # type: ignore[arg-type]


async def test_cmgs_pdu_flow(rig: Rig) -> None:
    a, b = rig.add(), rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CMEE=1")
    part = _submit(b.sims[0].sim.number, "Hi", status_report=False)[0]
    out = await port.send_pdu(part.tpdu_length, part.hex)
    assert out == "\r\n+CMGS: 1\r\n\r\nOK\r\n"
    assert (await port.send_pdu(part.tpdu_length, part.hex)).startswith("\r\n+CMGS: 2")
    # wrong <length>, bad hex and a non-SUBMIT are all "invalid PDU parameter"
    assert "+CMS ERROR: 304" in await port.send_pdu(part.tpdu_length + 1, part.hex)
    assert "+CMS ERROR: 304" in await port.send_pdu(10, "00ZZ")
    assert "+CMS ERROR: 304" in await port.send_pdu(8, "000400000000000000")
    # ESC at the prompt abandons the submit and answers OK
    port.session.feed(f"AT+CMGS={part.tpdu_length}\r".encode())
    await port.wire.expect(b"> ")
    port.session.feed(part.hex.encode()[:10] + b"\x1b")
    assert (await port.wire.expect(b"OK\r\n")).endswith(b"\r\nOK\r\n")
    assert [s.reference for s in rig.network.submitted] == [1, 2]
    assert all(s.modem == a.id and s.text == "Hi" for s in rig.network.submitted)


async def test_message_reference_wraps(rig: Rig) -> None:
    a, b = rig.add(), rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0")
    a.sims[0].next_mr = 255
    part = _submit(b.sims[0].sim.number, "x", status_report=False)[0]
    assert "+CMGS: 255" in await port.send_pdu(part.tpdu_length, part.hex)
    assert "+CMGS: 0" in await port.send_pdu(part.tpdu_length, part.hex)


async def test_echo_during_prompt(rig: Rig) -> None:
    b = rig.add()
    rig.add()
    await rig.start()
    port = rig.port("m2")
    part = _submit(b.sims[0].sim.number, "echo", status_report=False)[0]
    port.session.feed(f"AT+CMGS={part.tpdu_length}\r".encode())
    assert (await port.wire.expect(b"> ")).startswith(b"AT+CMGS=")
    port.session.feed(part.hex.encode() + b"\x1a")
    out = await port.wire.expect(b"OK\r\n")
    assert out.startswith(part.hex.encode())  # a modem with ATE1 echoes the PDU characters


async def test_text_mode_send_and_read(rig: Rig) -> None:
    a, b = rig.add(), rig.add()
    await rig.start()
    pa, pb = rig.port("m1"), rig.port("m2")
    for p in (pa, pb):
        await p.cmd("ATE0;+CMEE=1;+CMGF=1;+CNMI=2,1,0,1,0")
    await pa.cmd("AT+CSMP=49,167,0,0")  # 0x31: SUBMIT with status report request
    to = b.sims[0].sim.number
    pa.session.feed(f'AT+CMGS="{to}"\r'.encode())
    await pa.wire.expect(b"> ")
    pa.session.feed(b"line one\rline two\x1a")
    out = await pa.wire.expect(b"OK\r\n")
    assert b"+CMGS: 1" in out
    record = rig.network.submitted[-1]
    assert record.text == "line one\nline two" and record.status_report and record.mode == "text"
    assert '+CMTI: "SM",1' in await pb.urc(r"\+CMTI: [^\r]*\r\n")
    read = await pb.cmd("AT+CMGR=1")
    assert f'+CMGR: "REC UNREAD","{a.sims[0].sim.number}",,"' in read
    assert "line one\nline two" in read
    # text-mode status report: +CDS: 6,<mr>,"<ra>",145,...,<st>
    cds = await pa.urc(r"\+CDS: [^\r]*\r\n")
    assert f'+CDS: 6,1,"{to}",145,' in cds and cds.strip().endswith(",0")
    # the listing in text mode, and UCS2 character set for string parameters
    await pb.cmd('AT+CSCS="UCS2"')
    listing = await pb.cmd('AT+CMGL="ALL"')
    assert (
        "REC READ" in listing and "line one\nline two".encode("utf-16-be").hex().upper() in listing
    )


async def test_settings_reset_by_atz(rig: Rig) -> None:
    rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CMGF=1;+CMEE=2")
    await port.cmd("ATZ")
    assert "+CMGF: 0" in await port.cmd("AT+CMGF?")
    assert (await port.cmd("AT+CMEE?")).startswith("AT+CMEE?")  # echo is back on


async def test_unknown_probe_commands_give_error(rig: Rig) -> None:
    rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CMEE=1")
    for probe in ("AT+CPROT=?", "AT+SYNCML=?", "AT+MODE=2", "AT$TSSPCSW=?"):
        assert (await port.cmd(probe)) == "\r\nERROR\r\n"
    for needed in ("AT+CHUP=?", "AT+CSCS=?", "AT+CSCS?", "AT+CPMS=?", "AT+CGATT?"):
        assert (await port.cmd(needed)).endswith("\r\nOK\r\n"), needed


async def test_handler_never_crashes_on_junk_arguments(rig: Rig) -> None:
    rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CMEE=1")
    for junk in (
        'AT+CMGR="x"',
        "AT+CMGD=",
        "AT+CPMS=",
        'AT+CSCA="abc"',
        "AT+CFUN=9",
        "AT+CMGS=",
        'AT+CMGL="NOPE"',
        "AT+CSMS=5",
        "AT+CNMI=a",
        "AT+COPS=9",
        "ATE7",
        "ATV0",
    ):
        out = await port.cmd(junk)
        assert "ERROR" in out, junk
    assert (await port.cmd("AT")) == "\r\nOK\r\n"
    await asyncio.sleep(0)


@pytest.mark.parametrize("text", ["plain", "€uro [x]", "Привет"])
async def test_incoming_direct_cmt_decodes(rig: Rig, text: str) -> None:
    b = rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CNMI=2,2,0,0,0")
    rig.network.inject("+4917012345678", b.sims[0].sim.number, text)
    urc = await port.urc(r"\+CMT: ,\d+\r\n[0-9A-F]+\r\n")
    hex_pdu = urc.strip().split("\r\n")[-1]
    length = int(urc.split("+CMT: ,")[1].split("\r\n")[0])
    raw = bytes.fromhex(hex_pdu)
    assert len(raw) - 1 - raw[0] == length
    decoded = pdu.decode_incoming(raw)
    assert isinstance(decoded, pdu.Deliver)
    assert decoded.text == text and decoded.sender == "+4917012345678"
    # direct delivery is not stored
    assert rig.modems[0].sims[0].storage["SM"].used == 0


async def test_roaming_changes_serving_network(rig: Rig) -> None:
    modem = rig.add()
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CREG=1;+COPS=3,2")
    sim = modem.sims[0].sim
    sim.set_roaming(True)
    modem.network_changed()
    assert "+CREG: 5" in await port.urc(r"\+CREG: \d\r\n")
    assert "+CREG: 1,5" in await port.cmd("AT+CREG?")
    cops = await port.cmd("AT+COPS?")
    assert sim.serving.code in cops and sim.serving.code[:3] != sim.home.code[:3]
    assert sim.imsi.startswith(sim.home.code)  # the SIM itself stays what it is
    sim.set_roaming(False)
    assert sim.home.code in await port.cmd("AT+COPS?")
