"""The agent's integration scenarios with `backend = "gammu"`: real server, emulator and agent
processes, the modem driven through Gammu's own AT driver.

addsms (multipart unicode) -> delivered (7) from the status reports; SIM info on the server;
an incoming SMS stored as status 5 and removed from the SIM; one Gammu-driven modem texting the
other; the modem unplugged and replugged under the running agent, then the next message
delivered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import GatewayStack, wait_until

pytestmark = pytest.mark.integration

OUTSIDE = "+4930123456"  # outside the emulated set: the network reports it delivered
SENDER = "+4930987654321"


class GammuGatewayStack(GatewayStack):
    """A GatewayStack whose agent drives every modem with the Gammu backend."""

    def write_agent_config(self) -> Path:
        path = super().write_agent_config()
        lines = []
        for line in path.read_text().splitlines():
            if line.startswith(("dual_sim =", "profile =")):
                continue  # AT-backend keys; Gammu drives one SIM and knows its own modems
            lines.append(line)
            if line == "[[device]]":
                lines.append('backend = "gammu"')
        path.write_text("\n".join(lines) + "\n")
        return path


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[GammuGatewayStack]:
    gw = GammuGatewayStack(
        tmp_path / "gw",
        modems=2,
        profile="generic",
        dual_sim="none",
        emulator_args=["--report-delay", "0.2"],
    )
    try:
        gw.start()
        yield gw
    except BaseException:
        print(gw.logs(6000))
        raise
    finally:
        gw.close()


def test_gateway_with_the_gammu_backend(stack: GammuGatewayStack) -> None:
    assert 'backend = "gammu"' in (stack.root / "agent.toml").read_text()
    dev = stack.devices[0]
    stack.wait_agent_ready(timeout=90)

    # Send: multipart unicode, delivered once every part's report came back.
    text = "Grüße über Gammu ✓ " * 6
    sms_id = stack.addsms(dev, OUTSIDE, text)
    assert stack.wait_status(sms_id, {7, 8, 9}, timeout=90) == 7
    parts = [p for p in stack.submitted() if p["to"] == OUTSIDE]
    assert len(parts) == 2 and {p["coding"] for p in parts} == {"ucs2"}

    # SIM info as the server shows it: what Gammu knows, nothing invented.
    emulated = dev.modem["sims"][0]
    [sim] = stack.siminfo(dev)
    assert sim["Slot"] == "0" and sim["Roaming"] == "0" and sim["CountryIso"] == "de"
    assert sim["CarrierName"] == emulated["operator"]
    assert emulated["iccid"] not in sim["IccId"]  # Gammu cannot read it: unknown, not invented

    # Incoming: status 5 on the server, and then gone from the SIM.
    stack.emu.send_sms(SENDER, dev.number(), "hello gammu agent")

    def received() -> list[dict[str, Any]] | None:
        got = stack.all_sms(device_id=dev.device_id, status=5)
        return [m for m in got.values() if m["body"] == "hello gammu agent"] or None

    wait_until(received, 60, "incoming SMS on the server")
    wait_until(lambda: not _stored(stack, dev.modem_id) or None, 30, "SIM emptied")

    # Modem to modem: two Gammu-driven modems in one agent, one texting the other.
    other = stack.devices[1]
    m2m = stack.addsms(other, dev.number(), "from the other modem")
    assert stack.wait_status(m2m, {7, 8, 9}, timeout=90) == 7

    def from_other() -> list[dict[str, Any]] | None:
        got = stack.all_sms(device_id=dev.device_id, status=5)
        return [m for m in got.values() if m["body"] == "from the other modem"] or None

    [arrived] = wait_until(from_other, 60, "the modem-to-modem SMS on the server")
    assert arrived["sendto"] == other.number()

    # Unplug and replug under the running agent; the next message still goes out.
    stack.emu.unplug(dev.modem_id)
    agent = stack.agent
    assert agent is not None
    wait_until(lambda: "link lost" in agent.tail(50_000) or None, 30, "the agent to notice")
    stack.emu.replug(dev.modem_id)
    again = stack.addsms(dev, OUTSIDE, "after the replug")
    assert stack.wait_status(again, {7, 8, 9}, timeout=150) == 7


def _stored(stack: GatewayStack, modem_id: str) -> list[dict[str, Any]]:
    slot = stack.emu.storage(modem_id)["slots"][0]
    return [m for mem in slot["memories"].values() for m in mem["messages"]]
