"""GET /submitted answers from per-record JSON text: the same bytes json.dumps of describe()
gives, with `delivered` and `report_status` fresh on every poll, and each record encoded once.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from simhive.agent.modem import pdu
from simhive.hardware.emulator import network as network_mod
from simhive.hardware.emulator.client import EmulatorClient
from simhive.hardware.emulator.control import make_app
from simhive.hardware.emulator.emulator import Emulator, EmulatorConfig
from simhive.hardware.emulator.network import Network, Submitted

OUTSIDE = "+4917012345678"


def _submit(net: Network, emu: Emulator, modem_id: str, to: str, text: str) -> Submitted:
    modem = emu.get(modem_id).modem
    raw = pdu.encode_submit(to, text, status_report=True)[0].pdu
    submit = pdu.decode_submit(raw, with_smsc=True)
    return net.accept_submit(modem, 0, submit, 7, mode="pdu", raw_pdu=raw)


def _expected(net: Network, since: int = 0, modem: str | None = None) -> str:
    items = [s.describe() for s in net.submitted if s.id > since]
    if modem:
        items = [s for s in items if s["modem"] == modem]
    return json.dumps({"submitted": items})


async def _get(client: TestClient[Any, Any], query: str = "") -> str:
    resp = await client.get("/submitted" + query)
    assert resp.status == 200 and resp.content_type == "application/json"
    return await resp.text()


async def test_submitted_body_is_json_dumps_of_describe(tmp_path: Path) -> None:
    emu = Emulator(EmulatorConfig(modems=2, state_dir=tmp_path, report_delay=3600))
    net = emu.network
    # reports are due in an hour: report_status changes only where the test sets it
    net.configure({"rules": [{"pattern": "+4930*", "outcome": "failed"}]})
    async with TestClient(TestServer(make_app(emu))) as client:
        assert await _get(client) == '{"submitted": []}' == _expected(net)
        other = emu.get("m2").modem.sims[0].sim.number
        records = [
            _submit(net, emu, "m1", OUTSIDE, "plain"),
            _submit(net, emu, "m1", "+4930123456", 'quotes " and \\ and ümlaut ✓'),
            _submit(net, emu, "m2", other, "to an emulated SIM"),
            _submit(net, emu, "m2", OUTSIDE, "Grüße €"),
        ]
        await asyncio.sleep(0.05)  # routed: delivered flags set
        first = await _get(client)  # encodes and keeps each record's fixed fields
        assert first == _expected(net)
        # the emulated SIM is not plugged in (emulator not started): held, not delivered
        assert [r.delivered for r in records] == [True, False, False, True]
        records[0].report_status = 0
        records[1].report_status = 0x41
        records[2].delivered = True
        body = await _get(client)
        assert body == _expected(net) != first
        assert json.loads(body)["submitted"][1]["report_status"] == 0x41
        for since in (-1, 0, records[0].id, records[2].id, records[3].id, 10**6):
            assert await _get(client, f"?since={since}") == _expected(net, since)
        assert await _get(client, "?modem=m2") == _expected(net, 0, "m2")
        assert await _get(client, f"?since={records[2].id}&modem=m2") == _expected(
            net, records[2].id, "m2"
        )
        net.submitted.clear()
        assert await _get(client) == '{"submitted": []}'
        later = _submit(net, emu, "m1", OUTSIDE, "after the clear")
        assert await _get(client, f"?since={records[3].id}") == _expected(net, records[3].id)
        assert json.loads(await _get(client))["submitted"][0]["id"] == later.id


async def test_each_record_encoded_once_over_many_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll costs a join of cached text, not an encode of every record again."""
    emu = Emulator(EmulatorConfig(modems=1, state_dir=tmp_path))
    net = emu.network
    calls = 0
    describe = Submitted.describe

    def counting(self: Submitted) -> dict[str, object]:
        nonlocal calls
        calls += 1
        return describe(self)

    monkeypatch.setattr(network_mod.Submitted, "describe", counting)
    async with TestClient(TestServer(make_app(emu))) as client:
        for i in range(20):
            _submit(net, emu, "m1", OUTSIDE, f"text {i}")
        for _ in range(10):
            assert len(json.loads(await _get(client))["submitted"]) == 20
    assert calls == 20


class _Log(EmulatorClient):
    """The client's polling against a scripted log: each poll may add parts or clear the log."""

    def __init__(self, script: list[int | str]) -> None:
        super().__init__("http://127.0.0.1:9")
        self.log: list[dict[str, Any]] = []
        self.next_id = 1
        self.script = script
        self.asked: list[int] = []

    def submitted(self, *, since: int = 0, modem: str | None = None) -> list[dict[str, Any]]:
        self.asked.append(since)
        step = self.script.pop(0) if self.script else 0
        if step == "clear":
            self.log.clear()
        else:
            for _ in range(int(step)):
                self.log.append({"id": self.next_id, "delivered": False})
                self.next_id += 1
        return [dict(p) for p in self.log if p["id"] > since]


def test_wait_submitted_polls_only_new_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    log = _Log([3, 0, 4, 5])
    log.log = [{"id": 0, "delivered": True}]  # before `since`: never returned
    log.next_id = 1
    found = log.wait_submitted(12, since=0)
    # after 3, 3, 7 and 12 parts: the last poll is followed by one full read
    assert log.asked == [0, 3, 3, 7, 0]
    assert [p["id"] for p in found] == list(range(1, 13))


def test_wait_submitted_counts_again_after_a_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    log = _Log([4, "clear", 0, 2, 0, 2])
    found = log.wait_submitted(4, since=0)
    # 4 seen, but the full read finds the log cleared: wait for 4 present ones
    assert [p["id"] for p in found] == [5, 6, 7, 8]
    assert log.asked == [0, 0, 4, 4, 6, 6, 0]


def test_wait_submitted_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    log = _Log([1])
    with pytest.raises(TimeoutError):
        log.wait_submitted(2, timeout=0.2)
