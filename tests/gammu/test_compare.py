"""The same modem, the same messages, through both backends: the AT backend (agent/modem/atmodem.py)
and the Gammu backend, each built by the agent's own factory from a [[device]] config.

Both must count the same parts in the same coding, see the same delivery statuses, report the
same SIM fields where both can know them, and give a stored incoming SMS the same idempotency
key (so switching backends never makes the server store an SMS twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from simhive.agent.backends import build_modem
from simhive.agent.config import parse
from simhive.agent.modem.base import (
    DeliveryReport,
    IncomingSms,
    Modem,
    ModemState,
    SendResult,
    SimInfo,
)
from simhive.hardware.emulator.client import EmulatorProcess, run_emulator
from tests.gammu.conftest import Recorder

pytestmark = pytest.mark.integration

DELIVERED_TO = "+4930123456"  # outside the emulated set: reported delivered (TP-ST 0)
FAILING_TO = "+15550100"  # a network rule makes these fail (TP-ST 0x41)
TEXT = "Vergleich der Backends: Grüße ✓ " * 3  # UCS2, 2 parts
COMPARED = ("imsi", "operator_code", "country_iso", "roaming", "registered", "signal_dbm")


@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorProcess]:
    with run_emulator(modems=1, extra_args=["--report-delay", "0.2"]) as emu:
        emu.client.configure_network(rules=[{"pattern": "+1*", "outcome": "failed"}])
        emu.client.set_sim("m1", 0, roaming=True, csq=20)  # not the defaults: worth comparing
        yield emu


def device(emu: EmulatorProcess, backend: str) -> Modem:
    link = emu.state["modems"][0]["link"]
    cfg = parse(
        {
            "server": "http://127.0.0.1:9",
            "journal": "unused.sqlite3",
            "device": [{"name": backend, "token": "t", "backend": backend, "port": link}],
        }
    ).devices[0]
    return build_modem(cfg)


@dataclass
class Run:
    sim: SimInfo
    sent: SendResult
    failed: SendResult
    statuses: dict[int, int]  # reference -> TP-ST
    submitted: list[dict[str, Any]]
    refused_keys: list[str] = field(default_factory=list)


async def exercise(emu: EmulatorProcess, backend: str, *, refuse_incoming: bool) -> Run:
    events = Recorder()
    events.fail = lambda e: refuse_incoming and isinstance(e, IncomingSms)
    modem = device(emu, backend)
    before = emu.client.submitted()
    since = int(before[-1]["id"]) if before else 0
    await modem.start(events)
    try:
        assert modem.state is ModemState.READY
        [sim] = await modem.sim_info()
        sent = await modem.send(DELIVERED_TO, TEXT)
        failed = await modem.send(FAILING_TO, "this one fails")
        wanted = {*sent.references, *failed.references}

        def all_reports() -> list[DeliveryReport] | None:
            got = events.of(DeliveryReport)
            return got if wanted <= {r.reference for r in got} else None

        reports = await events.wait(all_reports)
        submitted = emu.client.submitted(since=since)
        refused = [e.key for e in events.refused if isinstance(e, IncomingSms)]
        return Run(sim, sent, failed, {r.reference: r.status for r in reports}, submitted, refused)
    finally:
        await modem.stop()


def shape(parts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    keys = ("to", "coding", "part", "parts", "status_report", "text")
    return [tuple(p[k] for k in keys) for p in parts]


async def wait_stored(emu: EmulatorProcess, text: str, within: float = 30.0) -> None:
    """Until the emulator has an SMS with this text stored on modem m1's SIM."""

    def stored() -> bool:
        slot = emu.client.storage("m1")["slots"][0]
        return any(m.get("text") == text for mem in slot["memories"].values()
                   for m in mem["messages"])  # fmt: skip

    async with asyncio.timeout(within):
        while True:
            if await asyncio.to_thread(stored):
                return
            await asyncio.sleep(0.05)  # polling the emulator's control API; nothing to await


async def test_both_backends_agree(emu: EmulatorProcess) -> None:
    at = await exercise(emu, "at", refuse_incoming=False)
    # An SMS that arrives while no backend runs stays stored on the SIM.
    emu.client.send_sms("+4917012345678", emu.state["modems"][0]["sims"][0]["number"], "stored")
    await wait_stored(emu, "stored")
    gm = await exercise(emu, "gammu", refuse_incoming=True)  # sees it, refuses, keeps it

    assert len(gm.sent.references) == len(at.sent.references) == 2
    assert gm.sent.encoding == at.sent.encoding == "ucs2"
    assert len(gm.failed.references) == len(at.failed.references) == 1
    assert shape(gm.submitted) == shape(at.submitted)  # what went over the air
    for run in (at, gm):
        assert [run.statuses[r] for r in run.sent.references] == [0, 0]
        assert run.statuses[run.failed.references[0]] == 0x41
    assert {f: getattr(gm.sim, f) for f in COMPARED} == {f: getattr(at.sim, f) for f in COMPARED}
    assert gm.sim.roaming and gm.sim.country_iso is not None and gm.sim.signal_dbm == -73
    assert gm.sim.iccid is None and at.sim.iccid is not None  # only AT can ask the SIM

    # The stored SMS: refused under Gammu (so still stored), then taken by the AT backend.
    assert len(gm.refused_keys) >= 1
    events = Recorder()
    modem = device(emu, "at")
    await modem.start(events)
    try:
        [sms] = await events.wait(lambda: events.of(IncomingSms))
    finally:
        await modem.stop()
    assert sms.text == "stored" and sms.key == gm.refused_keys[0]
