"""Each profile's quirks in-process (the same over ptys is in test_pty.py)."""

from __future__ import annotations

import asyncio

from simhive.agent.modem import pdu

from .harness import Port, Rig


async def _one(rig: Rig, profile: str) -> Port:
    rig.add(profile)
    rig.add("generic")  # a peer to send to
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CMEE=1")
    return port


async def test_generic_iccid_variants(rig: Rig) -> None:
    port = await _one(rig, "generic")
    iccid = rig.modems[0].sims[0].sim.iccid
    assert f"\r\n{iccid}\r\n" in await port.cmd("AT+CCID")
    assert f"+ICCID: {iccid}" in await port.cmd("AT+ICCID")
    assert f"+ICCID: {iccid}" in await port.cmd("AT+CICCID")
    assert "ERROR" in await port.cmd("AT+QCCID")


async def test_huawei_noise_until_curc_off(rig: Rig) -> None:
    port = await _one(rig, "huawei-e173")
    noise = await port.urc(r"\^(RSSI|MODE|SRVST):[^\r]*\r\n", 5)
    assert noise.strip().startswith("^")
    await port.cmd("AT^CURC=0")
    await asyncio.sleep(1.2)  # more than two noise intervals
    assert b"^" not in port.wire.take()
    iccid = rig.modems[0].sims[0].sim.iccid
    assert f"^ICCID: {iccid}" in await port.cmd("AT^ICCID?")
    assert "ERROR" in await port.cmd("AT+CCID")
    await port.cmd("AT+CREG=2")
    assert "+CREG: 2,1,04CA,81DE445" in await port.cmd("AT+CREG?")  # unquoted LAC/CI


async def test_simcom_boot_urcs_after_reset(rig: Rig) -> None:
    port = await _one(rig, "sim800c")
    assert "OK" in await port.cmd("AT+CFUN=1,1")
    boot = await port.urc(r"SMS Ready\r\n", 5)
    for line in ("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"):
        assert f"\r\n{line}\r\n" in boot
    assert boot.index("RDY") < boot.index("Call Ready") < boot.index("SMS Ready")
    assert "SIMCOM_SIM800C" in await port.cmd("AT+CGMM")


async def test_quectel_qccid_and_qind(rig: Rig) -> None:
    port = await _one(rig, "quectel-ec25")
    iccid = rig.modems[0].sims[0].sim.iccid
    assert f"+QCCID: {iccid}" in await port.cmd("AT+QCCID")
    await port.cmd("AT+CFUN=1,1")
    boot = await port.urc(r"\+QIND: PB DONE\r\n", 5)
    assert "+QIND: SMS DONE" in boot and "RDY" in boot
    assert "OK" in await port.cmd('AT+QURCCFG="urcport","usbat"')


async def test_wavecom_cpin_without_ok(rig: Rig) -> None:
    port = await _one(rig, "wavecom")
    port.session.feed(b"AT+CPIN?\r")
    await port.wire.expect(b"+CPIN: READY\r\n")
    await asyncio.sleep(0.2)
    assert b"OK" not in port.wire.take()
    assert await port.cmd("AT+CGMR") == "\r\nERROR\r\n"
    assert "+CMS ERROR: 302" in await port.cmd('AT+CPMS="SM","SM","SR"')
    assert '("SM","ME")\r\n' in await port.cmd("AT+CPMS=?")
    assert "MULTIBAND  900E  1800" in await port.cmd("AT+CGMM")


async def test_zte_interleaves_urcs_in_replies(rig: Rig) -> None:
    port = await _one(rig, "zte")
    part = pdu.encode_submit(rig.modems[1].sims[0].sim.number, "hi", status_report=False)[0]
    out = await port.send_pdu(part.tpdu_length, part.hex)
    assert out.index("+ZDONR:") < out.index("+ZPASR:") < out.index("+CMGS: 1") < out.index("OK")
    assert "+Z" not in await port.cmd("AT+CSQ")  # only the submit reply is interleaved
    assert f"+ICCID: {rig.modems[0].sims[0].sim.iccid}" in await port.cmd("AT+ICCID")
    assert "ERROR" in await port.cmd("AT+CCID")


async def test_ready_urcs_wait_for_a_busy_sim(rig: Rig) -> None:
    port = await _one(rig, "sim800c")
    rig.modems[0].apply_faults({"sim_busy": 0.5})
    await port.cmd("AT+CFUN=1,1")
    first = await port.urc(r"\+CFUN: 1\r\n", 5)
    assert "RDY" in first and "SMS Ready" not in first
    await port.cmd("ATE0;+CMEE=1")  # the reboot reset them
    assert "+CMS ERROR: 314" in await port.cmd("AT+CPMS?")  # too early: SIM still busy
    ready = await port.urc(r"SMS Ready\r\n", 5)
    assert "+CPIN: READY" in ready and "Call Ready" in ready
    assert "+CPMS:" in await port.cmd("AT+CPMS?")


async def test_boot_without_sim(rig: Rig) -> None:
    port = await _one(rig, "quectel-ec25")
    rig.modems[0].apply_faults({"sim_missing": True})
    await port.cmd("AT+CFUN=1,1")
    boot = await port.urc(r"\+CPIN: NOT INSERTED\r\n", 5)
    assert "RDY" in boot and "SMS DONE" not in boot


async def test_huawei_memory_full_urc(rig: Rig) -> None:
    port = await _one(rig, "huawei-e173")
    await port.cmd("AT^CURC=0;+CNMI=2,1,0,0,0")
    modem = rig.modems[0]
    modem.sims[0].storage["SM"].capacity = 1
    for text in ("fits", "no room", "still no room"):
        rig.network.inject("+4917000000", modem.sims[0].sim.number, text)
    out = await port.urc(r'\^SMMEMFULL: "SM"\r\n', 5)
    assert '+CMTI: "SM",1' in out
    await port.cmd("AT")
    assert b"SMMEMFULL" not in port.wire.take()  # reported once per episode
    assert rig.network.pending_count() == 2
