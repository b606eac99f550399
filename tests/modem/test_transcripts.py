"""Real modems' behaviour, recorded by other projects, replayed to our AT layer.

Session transcripts (python-gsmmodem's fake modems) drive the whole AtModem: start-up,
identity, capability choices, one send and one receive. Gammu's single-reply dumps check the
decoder and the parsers on what real devices printed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from simhive.agent.modem.at import AtDecoder, Info
from simhive.agent.modem.atinfo import parse_creg
from simhive.agent.modem.atinit import choose_cnmi, parse_cpms_options, parse_ranges
from simhive.agent.modem.atmodem import AtModem
from simhive.agent.modem.base import DeliveryReport, IncomingSms, ModemEvent, ModemState
from simhive.agent.modem.profiles import PROFILES
from simhive.agent.modem.transport import MemoryTransport
from tests.modem.fakemodem import FakeModem
from tests.modem.transcripts import DIR, load, load_dumps, sessions

# A real SMS-DELIVER from python-gsmmodem's test_modem.py (TestSms): "Hello world!" from
# +0123456789 via SMSC +2782913593, SC time 2013-03-08 15:02:16 +02:00.
DELIVER = "06917228195339040A9110325476980000313080512061800CC8329BFD06DDDF72363904"


@pytest.mark.parametrize("path", sessions(), ids=lambda p: p.stem)
async def test_session_transcript(path):
    tr = load(path)
    t = MemoryTransport(tr.name)
    fm = FakeModem(t, tr.replies, eol=tr.eol)
    events: list[ModemEvent] = []

    async def on_event(ev: ModemEvent) -> None:
        events.append(ev)

    modem = AtModem(t, health_interval=3600, ready_wait=2)
    await modem.start(on_event)
    try:
        assert modem.state is ModemState.READY, modem.state_reason
        ident = modem.identity
        got = {
            "manufacturer": ident.manufacturer,
            "model": ident.model,
            "firmware": ident.firmware,
            "imei": ident.imei,
            "profile": modem.profile.name,
            "storage": ",".join(modem.capabilities.storage),
            "cnmi": modem.capabilities.cnmi,
            "report_mode": modem.capabilities.report_mode,
        }
        for key, value in tr.expect.items():
            assert got[key] == value, f"{tr.model}: {key}"
        # Send: references come back in part order, whatever noise surrounds them.
        result = await modem.send("+491601112233", "transcript " + tr.name)
        assert result.references == [1]
        assert len(fm.submitted) == 1
        # Receive through +CMTI -> CMGR -> handler -> CMGD.
        index = fm.deliver(DELIVER)
        fm.urc(f'+CMTI: "SM",{index}')
        for _ in range(100):
            if index not in fm.storage:
                break
            await asyncio.sleep(0.02)
        sms = [e for e in events if isinstance(e, IncomingSms)]
        assert [(s.sender, s.text) for s in sms] == [("+0123456789", "Hello world!")]
        assert sms[0].sent_at == datetime(2013, 3, 8, 13, 2, 16, tzinfo=UTC)
        assert index not in fm.storage
    finally:
        await modem.stop()


def _replay(dump) -> list[Info]:
    d = AtDecoder()
    d.begin(dump.command, bare=dump.command == "AT+CGMM")
    data = "".join(f"\r\n{line}\r\n" for line in dump.reply).encode()
    return [e for e in d.feed(data) if isinstance(e, Info)]


@pytest.mark.parametrize("dump", load_dumps(DIR / "gammu-dumps.txt"), ids=lambda d: d.title)
def test_gammu_dump(dump):
    infos = _replay(dump)
    assert infos, "the reply line must be accepted as the command's answer"
    args = infos[0].line.partition(":")[2]
    ex = dump.expect
    if dump.command == "AT+CREG?":
        reg = parse_creg(args)
        if "registered" in ex:
            assert reg.registered == (ex["registered"] == "yes")
        if "roaming" in ex:
            assert reg.roaming == (ex["roaming"] == "yes")
        if "lac" in ex:
            assert (reg.lac or "") == ex["lac"]
    elif dump.command == "AT+CPMS=?":
        options = parse_cpms_options(args)
        prefs = PROFILES["generic"].storage_preference
        chosen = []
        for i in range(3):
            opts = options[i] if i < len(options) else []
            chosen.append(next((m for m in prefs if m in opts), "SM"))
        assert ",".join(chosen) == ex["storage"]
        if "options" in ex:
            assert options[0] == ex["options"].split()
    elif dump.command == "AT+CNMI=?":
        args_, report = choose_cnmi(parse_ranges(args))
        assert args_ == ex["cnmi"]
        assert report == ex["report_mode"]
    elif dump.command == "AT+CGMM":
        assert " ".join(" ".join(i.line.split()) for i in infos) == ex["model"]
    else:
        pytest.fail(f"no check for {dump.command}")


@pytest.mark.parametrize("dump", load_dumps(DIR / "gammu-cmgr.txt"), ids=lambda d: d.title)
async def test_gammu_cmgr_capture(dump):
    index = int(dump.command.split("=")[1])
    t = MemoryTransport()
    fm = FakeModem(t)
    captured = "\n".join(line for line in dump.reply if line)
    fm.hook = lambda cmd: captured if cmd == dump.command else None
    events: list[ModemEvent] = []

    async def on_event(ev: ModemEvent) -> None:
        events.append(ev)

    modem = AtModem(t, health_interval=3600)
    await modem.start(on_event)
    try:
        fm.urc(f'+CMTI: "SM",{index}')
        await asyncio.sleep(0.05)
        for _ in range(100):
            if f"AT+CMGD={index}" in fm.commands:
                break
            await asyncio.sleep(0.02)
        ex = dump.expect
        assert (f"AT+CMGD={index}" in fm.commands) == (ex["deleted"] == "yes")
        sms = [e for e in events if isinstance(e, IncomingSms)]
        reports = [e for e in events if isinstance(e, DeliveryReport)]
        if ex["event"] == "sms":
            assert [s.sender for s in sms] == [ex["sender"]] and not reports
        elif ex["event"] == "report":
            (rep,) = reports
            assert (rep.reference, rep.recipient, rep.status) == (
                int(ex["reference"]),
                ex["recipient"],
                int(ex["status"]),
            )
            assert not sms
        else:
            assert not sms and not reports
    finally:
        await modem.stop()
