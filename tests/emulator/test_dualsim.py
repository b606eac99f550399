"""Dual SIM in-process: CDSDS and QDSIM single standby, and the two-port layout."""

from __future__ import annotations

import time

from simhive.agent.modem import pdu

from .harness import Port, Rig


async def _wait_registered(port: Port) -> None:
    deadline = time.monotonic() + 10
    while ",1\r\n" not in (await port.cmd("AT+CREG?")).replace("DS", ""):
        assert time.monotonic() < deadline


async def test_cdsds_switch(rig: Rig) -> None:
    modem = rig.add("sim800c-ds", "cdsds")
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CMEE=1;+CMGF=1;+CNMI=2,1,0,0,0")
    assert "+CDSDS: SIM1,1,0" in await port.cmd("AT+CDSDS?")
    assert modem.sims[0].sim.imsi in await port.cmd("AT+CIMI")
    # an SMS for the inactive SIM waits in the network
    rig.network.inject("+4917000000", modem.sims[1].sim.number, "for SIM 2")
    await port.cmd("AT")
    assert rig.network.pending_count() == 1
    await port.cmd("AT+CDSDS=2")
    assert "+CREGDS: 0,2" in await port.cmd("AT+CREG?")  # re-registering
    assert "+CMS ERROR: 314" in await port.cmd("AT+CPMS?")
    urc = await port.urc(r'\+CMTIDS: "SM",1\r\n', 5)  # SIM 2 URC with the DS suffix
    assert "SMS Ready" in urc
    await _wait_registered(port)
    assert "+CDSDS: SIM2,1,0" in await port.cmd("AT+CDSDS?")
    assert modem.sims[1].sim.imsi in await port.cmd("AT+CIMI")
    assert modem.sims[1].sim.iccid in await port.cmd("AT+CCID")
    assert "+CMGF: 0" in await port.cmd("AT+CMGF?")  # per-SIM setting back to default
    assert "+CSQDS:" in await port.cmd("AT+CSQDS")
    assert "ERROR" in await port.cmd("AT+CDSDS=3")
    assert "ERROR" in await port.cmd("AT+QDSIM=1")


async def test_qdsim_switch_and_send_from_sim2(rig: Rig) -> None:
    modem = rig.add("quectel-ec25", "qdsim")
    peer = rig.add()
    await rig.start()
    port, peer_port = rig.port("m1"), rig.port("m2")
    await port.cmd("ATE0;+CMEE=1;+CNMI=2,1,0,1,0")
    await peer_port.cmd("ATE0;+CNMI=2,1,0,0,0")
    assert "+QDSIM: 0" in await port.cmd("AT+QDSIM?")
    await port.cmd("AT+QDSIM=1")
    await port.urc(r"\+QIND: SMS DONE\r\n", 5)
    await _wait_registered(port)
    assert "+QDSIM: 1" in await port.cmd("AT+QDSIM?")
    part = pdu.encode_submit(peer.sims[0].sim.number, "from SIM 2")[0]
    assert "+CMGS: 1" in await port.send_pdu(part.tpdu_length, part.hex)
    await peer_port.urc(r'\+CMTI: "SM",1\r\n')
    deliver = pdu.decode_incoming(
        bytes.fromhex((await peer_port.cmd("AT+CMGR=1")).split("\r\n")[3])
    )
    assert isinstance(deliver, pdu.Deliver) and deliver.sender == modem.sims[1].sim.number
    cds = await port.urc(r"\+CDS: \d+\r\n[0-9A-F]+\r\n")  # no DS suffix on Quectel
    assert cds.strip().startswith("+CDS:")
    assert rig.network.submitted[0].slot == 1


async def test_two_port_layout(rig: Rig) -> None:
    modem = rig.add("generic", "ports")
    peer = rig.add()
    await rig.start()
    sim1, sim2 = rig.port("m1", 0), rig.port("m1", 1)
    peer_port = rig.port("m2")
    for p in (sim1, sim2, peer_port):
        await p.cmd("ATE0;+CMEE=1;+CNMI=2,1,0,1,0")
    assert modem.sims[0].sim.imsi in await sim1.cmd("AT+CIMI")
    assert modem.sims[1].sim.imsi in await sim2.cmd("AT+CIMI")
    assert "ERROR" in await sim1.cmd("AT+CDSDS=2")
    rig.network.inject("+4917000000", modem.sims[1].sim.number, "to port 2")
    assert '+CMTI: "SM",1' in await sim2.urc(r"\+CMTI: [^\r]*\r\n")
    part = pdu.encode_submit(peer.sims[0].sim.number, "from port 2")[0]
    assert "+CMGS: 1" in await sim2.send_pdu(part.tpdu_length, part.hex)
    await sim2.urc(r"\+CDS: \d+\r\n")
    assert b"+CMTI" not in sim1.wire.take() and rig.network.submitted[0].slot == 1


async def test_switch_delay_fault(rig: Rig) -> None:
    modem = rig.add("quectel-ec25", "qdsim")
    await rig.start()
    port = rig.port("m1")
    await port.cmd("ATE0;+CMEE=1")
    modem.apply_faults({"switch_delay": 1.0})
    started = time.monotonic()
    await port.cmd("AT+QDSIM=1")
    await _wait_registered(port)
    assert time.monotonic() - started >= 1.0  # a lower bound: the fault's delay, not 0.5 s
    assert "+QDSIM: 1" in await port.cmd("AT+QDSIM?")
