"""The agent's integration scenarios with `backend = "gammu"`: real server, emulator and agent
processes, the modem driven through Gammu's own AT driver, next to a modem on the AT backend in
the same agent so both can be compared through the server's own API.

Both devices send the same multipart unicode message (delivered, 7) and a message the network
fails (8); their siminfo shows the same fields from the same emulated facts (only the AT backend
can read an ICCID); an incoming SMS on the Gammu modem becomes status 5 and leaves the SIM; the
AT modem texts the Gammu modem; the Gammu modem is unplugged and replugged under the running
agent, and the next message is delivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simhive.agent.modem.pdu import split_text
from tests.support.stack import Device, GatewayStack, wait_until

pytestmark = pytest.mark.integration

OUTSIDE = "+4930123456"  # outside the emulated set: the network reports it delivered
FAILING = "+15550100"  # a network rule fails these (TP-ST 0x41)
SENDER = "+4930987654321"
TEXT = "Grüße über beide Backends ✓ " * 5  # UCS2, 3 parts


class MixedGatewayStack(GatewayStack):
    """A GatewayStack whose first modem is driven by the Gammu backend, the rest by AT."""

    def write_agent_config(self, index: int = 0) -> Path:
        path = super().write_agent_config(index)
        self.config_path = path
        lines: list[str] = []
        devices = 0
        for line in path.read_text().splitlines():
            if line == "[[device]]":
                devices += 1
            gammu = devices == 1
            if gammu and line.startswith(("dual_sim =", "profile =")):
                continue  # AT-backend keys; Gammu drives one SIM and knows its own modems
            lines.append(line)
            if gammu and line == "[[device]]":
                lines.append('backend = "gammu"')
        path.write_text("\n".join(lines) + "\n")
        return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[MixedGatewayStack]:
    gw = MixedGatewayStack(
        tmp_path / "gw",
        modems=2,
        profile="generic",
        dual_sim="none",
        emulator_args=["--report-delay", "0.2"],
    )
    try:
        gw.start()
        gw.emu.configure_network(rules=[{"pattern": "+1*", "outcome": "failed"}])
        yield gw
    except BaseException:
        print(gw.logs(6000))
        raise
    finally:
        gw.close()


def test_gateway_with_the_gammu_backend(stack: MixedGatewayStack) -> None:
    config = stack.config_path.read_text()
    assert config.count('backend = "gammu"') == 1
    gm, at = stack.devices
    stack.wait_agent_ready(timeout=90)

    # The same messages through both backends: the same statuses, the same parts on the air.
    sent = {dev.modem_id: stack.addsms(dev, OUTSIDE, TEXT) for dev in (gm, at)}
    failed = {dev.modem_id: stack.addsms(dev, FAILING, "the network fails it") for dev in (gm, at)}
    for dev in (gm, at):
        assert stack.wait_status(sent[dev.modem_id], {7, 8, 9}, timeout=90) == 7
        assert stack.wait_status(failed[dev.modem_id], {7, 8, 9}, timeout=90) == 8
    air = {dev.modem_id: _parts(stack, dev, OUTSIDE) for dev in (gm, at)}
    coding, chunks = split_text(TEXT)
    expected = [(coding.value, i, len(chunks)) for i in range(1, len(chunks) + 1)]
    assert air[gm.modem_id] == air[at.modem_id] == expected
    assert coding.value == "ucs2" and len(chunks) == 3

    # siminfo on the server: the same facts from both, except what only AT can read.
    infos = {dev.modem_id: stack.siminfo(dev) for dev in (gm, at)}
    for dev in (gm, at):
        [sim] = infos[dev.modem_id]
        emulated = dev.modem["sims"][0]
        assert sim["Slot"] == "0" and sim["Roaming"] == "0" and sim["CountryIso"] == "de"
        assert sim["CarrierName"] == emulated["operator"]
    assert set(infos[gm.modem_id][0]) == set(infos[at.modem_id][0])
    assert infos[at.modem_id][0]["IccId"] == at.modem["sims"][0]["iccid"]
    assert gm.modem["sims"][0]["iccid"] not in infos[gm.modem_id][0]["IccId"]  # never invented

    # Incoming on the Gammu modem: status 5 on the server, and then gone from the SIM.
    stack.emu.send_sms(SENDER, gm.number(), "hello gammu agent")
    wait_until(lambda: _received(stack, gm, "hello gammu agent"), 60, "incoming on the server")
    wait_until(lambda: not _stored(stack, gm.modem_id) or None, 30, "SIM emptied")

    # Modem to modem: the AT modem texts the Gammu modem.
    m2m = stack.addsms(at, gm.number(), "from the AT modem")
    assert stack.wait_status(m2m, {7, 8, 9}, timeout=90) == 7
    [arrived] = wait_until(lambda: _received(stack, gm, "from the AT modem"), 60, "m2m SMS")
    assert arrived["sendto"] == at.number()

    # Unplug and replug under the running agent; the next message still goes out.
    stack.emu.unplug(gm.modem_id)
    agent = stack.agent
    assert agent is not None
    wait_until(lambda: "link lost" in agent.tail(50_000) or None, 30, "the agent to notice")
    stack.emu.replug(gm.modem_id)
    again = stack.addsms(gm, OUTSIDE, "after the replug")
    assert stack.wait_status(again, {7, 8, 9}, timeout=150) == 7


def _parts(stack: GatewayStack, dev: Device, to: str) -> list[tuple[str, int, int]]:
    return [
        (p["coding"], p["part"], p["parts"])
        for p in stack.submitted()
        if p["to"] == to and p["modem"] == dev.modem_id
    ]


def _received(stack: GatewayStack, dev: Device, body: str) -> list[dict[str, Any]] | None:
    got = stack.all_sms(device_id=dev.device_id, status=5)
    return [m for m in got.values() if m["body"] == body] or None


def _stored(stack: GatewayStack, modem_id: str) -> list[dict[str, Any]]:
    slot = stack.emu.storage(modem_id)["slots"][0]
    return [m for mem in slot["memories"].values() for m in mem["messages"]]
