"""The AT Modem's behaviour over a scripted modem: send, errors, receive, reports, recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simhive.agent.backends import SingleStandbyAtModem
from simhive.agent.modem import pdu
from simhive.agent.modem.atmodem import AtModem, open_at_modem
from simhive.agent.modem.base import (
    DeliveryReport,
    IncomingSms,
    ModemEvent,
    ModemState,
    SendError,
    SendOutcome,
    StateChange,
)
from simhive.agent.modem.dualport import DualPortModem
from simhive.agent.modem.transport import MemoryTransport
from tests.modem.fakemodem import FakeModem

NOW = datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC)


class Rig:
    def __init__(self, replies: dict[str, str] | None = None, **modem_kw: object) -> None:
        self.t = MemoryTransport()
        self.fm = FakeModem(self.t, replies)
        kw: dict[str, object] = {"health_interval": 3600, "ready_wait": 2.0}
        kw.update(modem_kw)
        self.modem = AtModem(self.t, **kw)  # type: ignore[arg-type]
        self.events: list[ModemEvent] = []
        self.fail_handler = False
        self.fail_reports = False

    async def handler(self, ev: ModemEvent) -> None:
        if self.fail_handler and isinstance(ev, IncomingSms):
            raise RuntimeError("journal unavailable")
        if self.fail_reports and isinstance(ev, DeliveryReport):
            raise RuntimeError("journal unavailable")
        self.events.append(ev)

    async def __aenter__(self) -> Rig:
        await self.modem.start(self.handler)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.modem.stop()

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def states(self) -> list[ModemState]:
        return [e.state for e in self.events if isinstance(e, StateChange)]


async def until(cond: Callable[[], object], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def deliver_hex(sender: str, text: str, **kw: object) -> str:
    return pdu.encode_deliver(sender, text, sc_timestamp=NOW, **kw).hex().upper()  # type: ignore[arg-type]


# -- start-up ---------------------------------------------------------------------------------


async def test_start_reads_identity_and_sim():
    replies = {"AT+COPS?": '+COPS: 0,2,"26201",7\nOK', "AT+CSPN?": '+CSPN: "congstar",0\nOK'}
    async with Rig(replies) as r:
        assert r.modem.state is ModemState.READY
        assert r.states()[-1] is ModemState.READY
        assert r.modem.identity.imei == "490154203237518"
        (info,) = await r.modem.sim_info()
        assert info.iccid == "89490200001234567890"
        assert info.imsi == "262011234567890"
        assert info.number == "+4915112345678"
        assert info.operator_code == "26201"
        assert info.country_iso == "de"
        assert info.carrier == "congstar"  # the SIM's brand, not the serving network
        assert info.signal_dbm == -71
        assert info.registered and not info.roaming
        # The init sequence, in order.
        order = [
            "ATE0",
            "AT+CMEE=1",
            "AT+CPIN?",
            "AT+CFUN?",
            "AT+CMGF=0",
            'AT+CSCS="GSM"',
            "AT+CSMS?",
            "AT+CPMS=?",
            "AT+CNMI=?",
            "AT+CREG=2",
            "AT+COPS=3,2",
        ]
        idx = [r.fm.commands.index(c) for c in order]
        assert idx == sorted(idx)


async def test_roaming_sim_is_reported():
    async with Rig({"AT+CREG?": '+CREG: 2,5,"2AF5","0B88E350",2\nOK'}) as r:
        (info,) = await r.modem.sim_info()
        assert info.roaming and info.registered
        assert r.modem.state is ModemState.READY


async def test_pin_is_entered_once():
    state = {"locked": True}

    def hook(cmd: str) -> str | None:
        if cmd == "AT+CPIN?":
            return "+CPIN: SIM PIN\nOK" if state["locked"] else "+CPIN: READY\nOK"
        if cmd == 'AT+CPIN="1234"':
            state["locked"] = False
            return "OK"
        return None

    r = Rig(pin="1234")
    r.fm.hook = hook
    async with r:
        assert r.modem.state is ModemState.READY
        assert r.fm.commands.count('AT+CPIN="1234"') == 1


async def test_missing_sim_is_degraded_not_fatal():
    async with Rig({"AT+CPIN?": "+CME ERROR: 10"}) as r:
        assert r.modem.state is ModemState.DEGRADED
        assert "missing" in r.modem.state_reason
        (info,) = await r.modem.sim_info()
        assert not info.present


async def test_sim_busy_at_boot_is_retried():
    busy = {"n": 3}

    def hook(cmd: str) -> str | None:
        if cmd == "AT+CMGF=0" and busy["n"]:
            busy["n"] -= 1
            return "+CMS ERROR: 314"
        return None

    r = Rig()
    r.fm.hook = hook
    async with r:
        assert r.modem.state is ModemState.READY
        assert r.fm.commands.count("AT+CMGF=0") >= 4


async def test_missing_port_does_not_raise_and_recovers_when_it_appears():
    r = Rig()
    r.modem.supervisor.reopen_min = 0.05
    r.t.fail_open = True
    async with r:
        assert r.modem.state is ModemState.DISCONNECTED
        r.t.fail_open = False
        await until(lambda: r.modem.state is ModemState.READY)


# -- sending ----------------------------------------------------------------------------------


async def test_send_single_with_status_report_request():
    async with Rig() as r:
        result = await r.modem.send("+491601112233", "Hi")
        assert result.references == [1] and result.encoding == "gsm7"
        sub = pdu.decode_submit(bytes.fromhex(r.fm.submitted[0]))
        assert sub.destination == "+491601112233" and sub.text == "Hi" and sub.status_report


async def test_send_multipart_unicode_in_order():
    text = "Grüße aus Köln 😀 " * 10
    async with Rig() as r:
        result = await r.modem.send("+491601112233", text)
        assert result.encoding == "ucs2"
        assert len(result.references) == len(r.fm.submitted) > 1
        assert result.references == list(range(1, len(r.fm.submitted) + 1))
        parts = [pdu.decode_submit(bytes.fromhex(h)) for h in r.fm.submitted]
        assert "".join(p.text for p in parts) == text
        assert [p.concat.seq for p in parts if p.concat] == list(range(1, len(parts) + 1))


async def test_permanent_error_fails_at_once_and_next_send_goes():
    async with Rig() as r:
        r.fm.cms_next = [1]
        with pytest.raises(SendError) as err:
            await r.modem.send("+491600000000", "to nobody")
        assert err.value.outcome is SendOutcome.PERMANENT and err.value.cms == 1
        assert err.value.status == 9 and err.value.parts_sent == 0
        result = await r.modem.send("+491601112233", "next one")
        assert result.references == [1]


@pytest.mark.parametrize(("code", "outcome"), [(42, SendOutcome.RETRY), (331, SendOutcome.RETRY)])
async def test_transient_errors_are_retryable(code: int, outcome: SendOutcome):
    async with Rig() as r:
        r.fm.cms_next = [code]
        with pytest.raises(SendError) as err:
            await r.modem.send("+491601112233", "x")
        assert err.value.outcome is outcome and err.value.cms == code


async def test_failure_in_second_part_reports_parts_sent():
    async with Rig() as r:

        def hook(cmd: str) -> str | None:
            if cmd.startswith("AT+CMGS") and len(r.fm.submitted) == 1:
                return "+CMS ERROR: 42"
            return None

        r.fm.hook = hook
        with pytest.raises(SendError) as err:
            await r.modem.send("+491601112233", "y" * 200)
        assert err.value.parts_sent == 1


async def test_no_prompt_is_retry_and_no_answer_is_unknown():
    async with Rig(prompt_timeout=0.2, send_timeout=0.3) as r:
        r.fm.no_prompt = True
        with pytest.raises(SendError) as err:
            await r.modem.send("+491601112233", "x")
        assert err.value.outcome is SendOutcome.RETRY
        r.fm.no_prompt = False

        def swallow_pdu(cmd: str) -> str | None:
            return None

        # The PDU is written but no +CMGS ever comes: it may have left; never resend blindly.
        r.fm.cms_next = []
        original = r.fm._submit

        def lost(pdu_hex: str) -> None:
            r.fm._pdu_len = None
            r.fm.submitted.append(pdu_hex)

        r.fm._submit = lost  # type: ignore[method-assign]
        with pytest.raises(SendError) as err:
            await r.modem.send("+491601112233", "x")
        assert err.value.outcome is SendOutcome.UNKNOWN
        r.fm._submit = original  # type: ignore[method-assign]
        assert (await r.modem.send("+491601112233", "after")).references


async def test_bad_number_never_reaches_the_modem():
    async with Rig() as r:
        before = list(r.fm.commands)
        with pytest.raises(SendError) as err:
            await r.modem.send('+49"\r\nAT+CFUN=0', "x")
        assert err.value.outcome is SendOutcome.PERMANENT
        assert r.fm.commands == before


async def test_unplug_during_submit_is_unknown():
    async with Rig(send_timeout=5) as r:
        r.fm.hook = None

        def unplug_after_pdu(pdu_hex: str) -> None:
            r.t.unplug()

        r.fm._submit = unplug_after_pdu  # type: ignore[method-assign]
        with pytest.raises(SendError) as err:
            await r.modem.send("+491601112233", "x")
        assert err.value.outcome is SendOutcome.UNKNOWN


# -- receiving ----------------------------------------------------------------------------------


async def test_sweep_at_start_hands_over_then_deletes():
    r = Rig()
    i1 = r.fm.deliver(deliver_hex("+4917012345", "stored one"))
    i2 = r.fm.deliver(deliver_hex("Bank", "alpha sender"))
    sent = r.fm.deliver(deliver_hex("+4917012345", "x"), stat=3)  # stored outgoing: not ours
    async with r:
        sms = r.of(IncomingSms)
        assert [(s.sender, s.text) for s in sms] == [
            ("+4917012345", "stored one"),
            ("Bank", "alpha sender"),
        ]
        assert i1 not in r.fm.storage and i2 not in r.fm.storage
        assert sent in r.fm.storage
        assert all(s.key for s in sms) and sms[0].key != sms[1].key


async def test_handler_failure_keeps_the_message_for_the_next_sweep():
    r = Rig()
    idx = r.fm.deliver(deliver_hex("+4917012345", "keep me"))
    r.fail_handler = True
    async with r:
        assert idx in r.fm.storage
        r.fail_handler = False
        await r.modem.inbox.sweep_all()
        (sms,) = r.of(IncomingSms)
        assert sms.text == "keep me" and idx not in r.fm.storage


async def test_same_stored_message_gives_the_same_key():
    r1, r2 = Rig(), Rig()
    h = deliver_hex("+4917012345", "same")
    r1.fm.deliver(h)
    r2.fm.deliver(h)
    async with r1, r2:
        assert r1.of(IncomingSms)[0].key == r2.of(IncomingSms)[0].key


async def test_cmti_multipart_is_delivered_once_complete():
    async with Rig() as r:
        p1 = deliver_hex("+4917012345", "first half ", concat=pdu.Concat(77, 2, 1))
        p2 = deliver_hex("+4917012345", "second half", concat=pdu.Concat(77, 2, 2))
        i1 = r.fm.deliver(p1)
        r.fm.urc(f'+CMTI: "SM",{i1}')
        await asyncio.sleep(0.1)
        assert r.of(IncomingSms) == [] and i1 in r.fm.storage  # kept until complete
        i2 = r.fm.deliver(p2)
        r.fm.urc(f'+CMTI: "SM",{i2}')
        await until(lambda: r.of(IncomingSms))
        (sms,) = r.of(IncomingSms)
        assert sms.text == "first half second half" and sms.parts == 2
        await until(lambda: not r.fm.storage)


async def test_direct_status_report():
    async with Rig() as r:
        rep = pdu.encode_status_report(
            7, "+491601112233", 0, sc_timestamp=NOW, discharge_time=NOW + timedelta(seconds=3)
        )
        r.fm.urc(f"+CDS: {len(rep) - 1}\n{rep.hex().upper()}")
        await until(lambda: r.of(DeliveryReport))
        (rep_ev,) = r.of(DeliveryReport)
        assert (rep_ev.reference, rep_ev.recipient, rep_ev.status) == (7, "+491601112233", 0)


async def test_stored_status_report_read_from_sr_and_deleted():
    async with Rig() as r:
        rep = pdu.encode_status_report(
            9, "+491601112233", 0x46, sc_timestamp=NOW, discharge_time=NOW
        )
        r.fm.reports[3] = (0, rep.hex().upper())
        r.fm.urc('+CDSI: "SR",3')
        await until(lambda: r.of(DeliveryReport))
        assert r.of(DeliveryReport)[0].status == 0x46
        await until(lambda: not r.fm.reports)
        assert 'AT+CPMS="SR"' in r.fm.commands
        assert r.fm.mem == "SM"  # read memory restored


async def test_undecodable_stored_pdu_is_skipped_and_removed():
    r = Rig()
    bad = r.fm.deliver("07FFFF")
    good = r.fm.deliver(deliver_hex("+4917012345", "fine"))
    async with r:
        assert [s.text for s in r.of(IncomingSms)] == ["fine"]
        assert bad not in r.fm.storage and good not in r.fm.storage


# -- supervision ----------------------------------------------------------------------------------


async def test_unplug_and_replug():
    async with Rig() as r:
        r.modem.supervisor.reopen_min = 0.05
        assert r.modem.connection_epoch == 1  # the connect at start
        r.t.fail_open = True
        r.t.unplug()
        await until(lambda: r.modem.state is ModemState.DISCONNECTED)
        with pytest.raises(SendError) as err:
            await r.modem.send("+491601112233", "x")
        assert err.value.outcome is SendOutcome.RETRY
        idx = r.fm.deliver(deliver_hex("+4917012345", "while away"))
        r.t.fail_open = False
        await until(lambda: r.modem.state is ModemState.READY)
        await until(lambda: idx not in r.fm.storage)  # swept after the reconnect
        assert r.modem.connection_epoch == 2  # one more connect, however many tries it took
        assert (await r.modem.send("+491601112233", "back")).references


async def test_hung_modem_climbs_the_ladder_and_recovers():
    async with Rig(health_interval=0.2, time_scale=0.1) as r:
        r.modem.supervisor.reopen_min = 0.05
        r.fm.silent = True
        sup = r.modem.supervisor
        await until(lambda: sup.failures >= 1 or r.modem.state is not ModemState.READY)
        r.fm.silent = False
        await until(lambda: r.modem.state is ModemState.READY and r.modem.supervisor.failures == 0)
        assert r.modem.supervisor.recoveries >= 1
        assert (await r.modem.send("+491601112233", "alive")).references


async def test_boot_urc_triggers_reinit():
    async with Rig() as r:
        n = r.fm.commands.count("AT+CMGF=0")
        r.fm.urc("RDY")
        await until(lambda: r.fm.commands.count("AT+CMGF=0") > n)
        await until(lambda: r.modem.state is ModemState.READY)


# -- dual SIM -------------------------------------------------------------------------------------


def cdsds_rig() -> Rig:
    r = Rig(dual_sim="cdsds", profile="sim800c-ds")
    sim = {"active": 1}
    per_sim = {
        1: ("262011111111111", "89490200001111111111", "+4915100000001"),
        2: ("262022222222222", "89490200002222222222", "+4915200000002"),
    }

    def hook(cmd: str) -> str | None:
        imsi, iccid, number = per_sim[sim["active"]]
        if cmd == "AT+CDSDS?":
            return f"+CDSDS: SIM{sim['active']},1,0\nOK"
        if cmd.startswith("AT+CDSDS="):
            sim["active"] = int(cmd.split("=")[1])
            return "OK"
        if cmd == "AT+CIMI":
            return f"{imsi}\nOK"
        if cmd == "AT+CCID":
            return f"+CCID: {iccid}\nOK"
        if cmd == "AT+CNUM":
            return f'+CNUM: "","{number}",145\nOK'
        return None

    r.fm.hook = hook
    r.sim = sim  # type: ignore[attr-defined]
    return r


async def test_single_standby_dual_sim_switches_and_rereads():
    async with cdsds_rig() as r:
        assert r.modem.slots == [0, 1]
        infos = await r.modem.sim_info()
        assert infos[0].active and infos[0].iccid == "89490200001111111111"
        await r.modem.send("+491601112233", "via SIM 2", slot=1)
        assert "AT+CDSDS=2" in r.fm.commands
        infos = await r.modem.sim_info()
        assert infos[1].active and infos[1].iccid == "89490200002222222222"
        assert infos[1].number == "+4915200000002"
        assert not infos[0].active and infos[0].iccid == "89490200001111111111"
        # Per-SIM settings repeated after the switch.
        after = r.fm.commands[r.fm.commands.index("AT+CDSDS=2") :]
        assert "AT+CMGF=0" in after and any(c.startswith("AT+CNMI=") for c in after)
        # Sending again on SIM 2 does not switch again.
        n = r.fm.commands.count("AT+CDSDS=2")
        await r.modem.send("+491601112233", "again", slot=1)
        assert r.fm.commands.count("AT+CDSDS=2") == n


@pytest.mark.parametrize("wrapped", [False, True], ids=["AtModem", "SingleStandbyAtModem"])
@pytest.mark.parametrize("failure", ["timeout", "unplug"])
async def test_activate_slot_raises_only_send_error(wrapped: bool, failure: str):
    # The Modem interface promises SendError from a switch; the dispatcher's view of the
    # agent's single-standby wrapper must not differ from the AT backend it wraps.
    r = cdsds_rig()
    r.modem._ch.time_scale = 0.05  # the unanswered command times out in a blink
    switch = r.fm.hook
    assert switch is not None

    def failing(cmd: str) -> str | None:
        if r.sim["active"] == 2 and cmd == "AT+CIMI":  # type: ignore[attr-defined]
            return ""  # no answer: re-reading the new SIM times out
        if failure == "unplug" and cmd == "AT+CDSDS=2":
            r.t.unplug()  # the port goes away under the switch command
            return ""
        return switch(cmd)

    async with r:
        r.fm.hook = failing
        modem = SingleStandbyAtModem(r.modem) if wrapped else r.modem
        with pytest.raises(SendError) as err:
            await modem.activate_slot(1)
        assert err.value.outcome is SendOutcome.RETRY
        assert "selecting SIM 2" in str(err.value)


async def test_ds_suffixed_cmti_is_sim_two():
    async with cdsds_rig() as r:
        await r.modem.send("+491601112233", "switch", slot=1)
        idx = r.fm.deliver(deliver_hex("+4917012345", "to SIM 2"))
        r.fm.urc(f'+CMTIDS: "SM",{idx}')
        await until(lambda: r.of(IncomingSms))
        assert r.of(IncomingSms)[0].slot == 1


async def test_two_ports_as_one_device():
    t0, t1 = MemoryTransport("p0"), MemoryTransport("p1")
    f0 = FakeModem(t0)
    f1 = FakeModem(t1, {"AT+CCID": "+CCID: 89490200009999999999\nOK"})
    modem = open_at_modem([t0, t1], dual_sim="ports", health_interval=3600)  # type: ignore[list-item]
    assert isinstance(modem, DualPortModem)
    events: list[ModemEvent] = []

    async def handler(ev: ModemEvent) -> None:
        events.append(ev)

    await modem.start(handler)
    try:
        assert modem.slots == [0, 1] and modem.state is ModemState.READY
        # Start-up reports one combined state, not the intermediate states of each port.
        assert [e.state for e in events if isinstance(e, StateChange)] == [ModemState.READY]
        infos = await modem.sim_info()
        assert [i.slot for i in infos] == [0, 1]
        assert infos[1].iccid == "89490200009999999999"
        await modem.send("+491601112233", "via port 2", slot=1)
        assert len(f1.submitted) == 1 and not f0.submitted
        idx = f1.deliver(deliver_hex("+4917012345", "port 2 inbox"))
        f1.urc(f'+CMTI: "SM",{idx}')
        await until(lambda: any(isinstance(e, IncomingSms) for e in events))
        assert [e.slot for e in events if isinstance(e, IncomingSms)] == [1]
    finally:
        await modem.stop()


async def test_direct_cmt_is_acknowledged_when_csms_service_is_one():
    # CSMS service 1 (the modem's own setting here): direct deliveries need +CNMA, or the
    # network delivers them again.
    async with Rig({"AT+CSMS?": "+CSMS: 1,1,1,1\nOK"}) as r:
        assert r.modem.capabilities.csms_service == 1
        h = deliver_hex("+4917012345", "direct")
        r.fm.urc(f"+CMT: ,{len(h) // 2 - 8}\n{h}")
        await until(lambda: r.of(IncomingSms))
        assert r.of(IncomingSms)[0].text == "direct" and r.of(IncomingSms)[0].storage == []
        await until(lambda: "AT+CNMA" in r.fm.commands)


async def test_activate_slot_is_a_no_op_on_single_sim():
    async with Rig() as r:
        n = len(r.fm.commands)
        await r.modem.activate_slot(0)
        assert len(r.fm.commands) == n


def quectel_dual_sim() -> tuple[Rig, dict[str, int]]:
    """A Quectel EC25 with two SIMs behind AT+QDSIM; `state["holder"]` is the SIM it serves."""
    r = Rig(dual_sim="qdsim", profile="quectel-ec25")
    state = {"holder": 0}

    def hook(cmd: str) -> str | None:
        if cmd == "AT+QDSIM?":
            return f"+QDSIM: {state['holder']}\nOK"
        if cmd.startswith("AT+QDSIM="):
            state["holder"] = int(cmd.split("=")[1])
            return "OK"
        if cmd == "AT+CFUN=0":
            return "OK\n+CPIN: NOT READY"
        if cmd == "AT+CFUN=1":
            return "OK\n+CFUN: 1\n+CPIN: READY\n+QIND: SMS DONE"
        return None

    r.fm.hook = hook
    return r, state


async def test_qdsim_switch_urcs_are_not_a_reboot():
    # Quectel applies AT+QDSIM only after the radio is cycled; the +CPIN/+CFUN URCs that follow
    # are ours and must not trigger a full re-initialisation.
    r, state = quectel_dual_sim()
    async with r:
        inits = r.fm.commands.count("ATE0")
        await r.modem.send("+491601112233", "via holder 1", slot=1)
        assert state["holder"] == 1 and r.modem.active_slot == 1
        await asyncio.sleep(0.3)
        assert r.fm.commands.count("ATE0") == inits
        assert r.modem.state is ModemState.READY


async def test_creg_urc_rereads_only_on_a_change():
    async with Rig() as r:
        n = r.fm.commands.count("AT+CIMI")
        r.fm.urc('+CREG: 1,"4CB","81DE446"')  # a cell change, same registration
        await asyncio.sleep(0.2)
        assert r.fm.commands.count("AT+CIMI") == n
        r.fm.replies["AT+CREG?"] = '+CREG: 2,5,"4CB","81DE446"\nOK'
        r.fm.urc('+CREG: 5,"4CB","81DE446"')  # now roaming
        await until(lambda: "roaming" in r.modem.state_reason)
        (info,) = await r.modem.sim_info()
        assert info.roaming


async def test_iccid_command_that_worked_is_tried_first_next_time():
    replies = {"AT+CCID": "ERROR", "AT+QCCID": "+QCCID: 8949020000123456789F\nOK"}
    async with Rig(replies) as r:
        (info,) = await r.modem.sim_info()
        assert info.iccid == "8949020000123456789"
        before = len(r.fm.commands)
        await r.modem.sim_info()
        tried = [c for c in r.fm.commands[before:] if "CCID" in c]
        assert tried == ["AT+QCCID"]


async def test_stored_reports_mode_sweeps_sr_memory_at_start():
    # A modem that offers only ds=2 (reports stored in "SR" with +CDSI): reports that arrived
    # while the agent was down are found by the start-up sweep.
    r = Rig({"AT+CNMI=?": "+CNMI: (2),(0-1),(0),(0,2),(0)\nOK"})
    rep = pdu.encode_status_report(42, "+491601112233", 0, sc_timestamp=NOW, discharge_time=NOW)
    r.fm.reports[1] = (0, rep.hex().upper())
    async with r:
        assert r.modem.capabilities.cnmi == "2,1,0,2,0"
        assert r.modem.capabilities.report_mode == "stored"
        assert [d.reference for d in r.of(DeliveryReport)] == [42]
        assert not r.fm.reports


async def test_wrong_pin_is_not_retried_and_never_logged(caplog):
    def hook(cmd: str) -> str | None:
        if cmd == "AT+CPIN?":
            return "+CPIN: SIM PIN\nOK"
        if cmd.startswith("AT+CPIN="):
            return "+CME ERROR: 16"  # incorrect password
        return None

    r = Rig(pin="9876", health_interval=0.2)
    r.fm.hook = hook
    with caplog.at_level("DEBUG"):
        async with r:
            assert r.modem.state is ModemState.DEGRADED and "PIN" in r.modem.state_reason
            await asyncio.sleep(0.6)  # health checks run; none may enter the PIN again
            assert sum(c.startswith("AT+CPIN=") for c in r.fm.commands) == 1
    assert "9876" not in caplog.text
    assert all("9876" not in e.reason for e in r.of(StateChange))


async def test_switch_during_sweep_defers_deletes_to_the_right_sim():
    # A sweep lists SIM 1's messages; while they are handed over, the dispatcher switches to
    # SIM 2. The listed indexes belong to SIM 1: they must be labelled slot 0 and deleted only
    # once SIM 1 is active again, never on SIM 2 (where the index is someone else's message).
    r = cdsds_rig()
    i1 = r.fm.deliver(deliver_hex("+4917012345", "one"))
    i2 = r.fm.deliver(deliver_hex("+4917012345", "two"))
    switched = {"done": False}
    original = r.handler

    async def handler(ev: ModemEvent) -> None:
        await original(ev)
        if isinstance(ev, IncomingSms) and not switched["done"]:
            switched["done"] = True
            await r.modem.send("+491601112233", "switch now", slot=1)

    r.handler = handler  # type: ignore[method-assign]
    async with r:
        await until(lambda: len(r.of(IncomingSms)) == 2)
        assert [s.slot for s in r.of(IncomingSms)] == [0, 0]
        assert r.modem.active_slot == 1
        assert i1 in r.fm.storage and i2 in r.fm.storage  # not deleted while SIM 2 is active
        await r.modem.send("+491601112233", "back to SIM 1", slot=0)
        await until(lambda: i1 not in r.fm.storage and i2 not in r.fm.storage)


async def test_sms_ready_urc_triggers_a_sweep():
    async with Rig(profile="sim800c") as r:
        idx = r.fm.deliver(deliver_hex("+4917012345", "stored during boot"))
        r.fm.urc("SMS Ready")  # no +CMTI for what arrived while the SMS stack started
        await until(lambda: r.of(IncomingSms))
        assert idx not in r.fm.storage


async def test_ladder_resets_with_cfun_when_reinit_does_not_help():
    # The modem still answers AT but its SIM/SMS side is wedged (AT+CPIN? never answers) until
    # it is reset: re-initialising is not enough, AT+CFUN=1,1 is.
    r = Rig(health_interval=0.2, time_scale=0.05)
    wedged = {"on": False}

    def hook(cmd: str) -> str | None:
        if cmd == "AT+CFUN=1,1":
            wedged["on"] = False
            return "OK"
        if wedged["on"] and cmd == "AT+CPIN?":
            return ""  # swallowed: no answer at all
        return None

    r.fm.hook = hook
    async with r:
        wedged["on"] = True
        await until(lambda: "AT+CFUN=1,1" in r.fm.commands, seconds=30)
        await until(lambda: r.modem.state is ModemState.READY, seconds=30)
        assert r.modem.supervisor.recoveries >= 2  # re-init first, then the reset
        assert (await r.modem.send("+491601112233", "after reset")).references


async def test_a_direct_report_is_acknowledged_only_after_its_handler_returned():
    # CSMS service 1 is asked for, so the network keeps a +CDS until AT+CNMA; a handler that
    # failed (the journal write did not happen) leaves it unacknowledged, to come again.
    async with Rig() as r:
        assert r.modem.capabilities.csms_service == 1 and "AT+CSMS=1" in r.fm.commands
        rep = pdu.encode_status_report(7, "+491601112233", 0, sc_timestamp=NOW, discharge_time=NOW)
        urc = f"+CDS: {len(rep) - 1}\n{rep.hex().upper()}"
        r.fail_reports = True
        r.fm.urc(urc)
        await asyncio.sleep(0.3)
        assert "AT+CNMA" not in r.fm.commands and not r.of(DeliveryReport)
        r.fail_reports = False
        r.fm.urc(urc)  # the network's repeat
        await until(lambda: r.of(DeliveryReport))
        await until(lambda: "AT+CNMA" in r.fm.commands)


async def test_a_late_acknowledgement_restores_report_routing():
    # +CMS ERROR 340: the modem had given up waiting (27.005 then sets CNMI mt and ds to 0).
    async with Rig({"AT+CNMA": "+CMS ERROR: 340"}) as r:
        rep = pdu.encode_status_report(8, "+491601112233", 0, sc_timestamp=NOW, discharge_time=NOW)
        n = r.fm.commands.count(f"AT+CNMI={r.modem.capabilities.cnmi}")
        r.fm.urc(f"+CDS: {len(rep) - 1}\n{rep.hex().upper()}")
        await until(lambda: r.of(DeliveryReport))
        cnmi = f"AT+CNMI={r.modem.capabilities.cnmi}"
        await until(lambda: r.fm.commands.count(cnmi) == n + 1)


async def test_a_report_belongs_to_the_sim_active_when_it_arrived():
    """A status report is handled after the one before it, and the dispatcher may switch SIMs
    meanwhile: the report still belongs to the SIM that was active when it arrived. Taken for
    the newly active SIM's, it was matched to that SIM's part with the same MR (MRs count per
    SIM), and its own message never got it (chaos runs, dual-SIM modem under load)."""
    r, _ = quectel_dual_sim()
    first_handled = asyncio.Event()
    release = asyncio.Event()

    async def slow_journal(ev: ModemEvent) -> None:
        if isinstance(ev, DeliveryReport) and not first_handled.is_set():
            first_handled.set()
            await release.wait()  # the journal write of the first report takes a while
        r.events.append(ev)

    r.handler = slow_journal  # type: ignore[method-assign]
    async with r:
        assert r.modem.active_slot == 0
        for mr in (7, 8):
            rep = pdu.encode_status_report(
                mr, "+491601112233", 0, sc_timestamp=NOW, discharge_time=NOW
            )
            r.fm.urc(f"+CDS: {len(rep) - 1}\n{rep.hex().upper()}")
        await asyncio.wait_for(first_handled.wait(), 10)
        await asyncio.sleep(0.1)  # the second report has arrived and waits for the worker
        await asyncio.wait_for(r.modem.activate_slot(1), 10)
        assert r.modem.active_slot == 1
        release.set()
        await until(lambda: len(r.of(DeliveryReport)) == 2)
        assert [(rep.reference, rep.slot) for rep in r.of(DeliveryReport)] == [(7, 0), (8, 0)]
