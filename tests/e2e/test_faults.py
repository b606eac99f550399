"""Crashes and outages with real processes: nothing accepted is lost, nothing is sent twice.

- kill -9 of the agent in the middle of a batch, then a restart;
- kill -9 of the server while clients keep calling addsms, then a restart;
- a proxy between agent and server that stalls, then refuses the agent, for minutes.

Every message is followed to its end: the emulator's /submitted log counts the AT+CMGS of each
(one entry per accepted submit), the compat API gives its final status.
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration

OUTSIDE = "+4917012345678"
DELIVERED, NOT_DELIVERED = 7, 8
SEND_FAILED = {9, 10, 11, 12, 100, 101}  # 9 also carries outcome-unknown (agent-protocol.md)
FINAL = {DELIVERED, NOT_DELIVERED} | SEND_FAILED


def cmgs_per_text(stack: GatewayStack) -> collections.Counter[str]:
    return collections.Counter(p["text"] for p in stack.submitted())


def final_statuses(stack: GatewayStack, ids: dict[int, str], timeout: float) -> dict[int, int]:
    """Wait until every message has a final status; {id: status}."""

    def probe() -> dict[int, int] | None:
        statuses = {i: stack.status(i) for i in ids}
        return statuses if all(s in FINAL for s in statuses.values()) else None

    try:
        return wait_until(probe, timeout, "every message to reach a final status", interval=0.5)
    except AssertionError:
        now = {i: stack.status(i) for i in ids}
        raise AssertionError(f"not final: {now}\n{stack.logs()}") from None


def failure_details(stack: GatewayStack, ids: list[int]) -> dict[int, tuple[str, str]]:
    """(failure_code, failure_reason) the server stored (read-only look at its database)."""
    with contextlib.closing(sqlite3.connect(f"file:{stack.db}?mode=ro", uri=True)) as db:
        sql = "SELECT failure_code, failure_reason FROM messages WHERE id = ?"
        rows = {i: db.execute(sql, (i,)).fetchone() for i in ids}
    return {i: (str(code), str(reason)) for i, (code, reason) in rows.items()}


def end_states(stack: GatewayStack, statuses: dict[int, int]) -> dict[int, str]:
    """Every message's end state by name: delivered, not delivered, failed, or one of the two
    outcome-unknown cases (the crash hit its AT+CMGS; or sent, but no report in time)."""
    details = failure_details(stack, [i for i, s in statuses.items() if s in SEND_FAILED])
    out = {}
    for sms_id, status in statuses.items():
        if status == DELIVERED:
            out[sms_id] = "delivered"
        elif status == NOT_DELIVERED:
            out[sms_id] = "not delivered"
        elif details[sms_id][0] != "unknown":
            out[sms_id] = f"failed ({status})"
        elif "during AT+CMGS" in details[sms_id][1]:
            out[sms_id] = "unknown: killed during AT+CMGS"
        elif "no final delivery report" in details[sms_id][1]:
            out[sms_id] = "unknown: sent, no report in time"
        else:
            out[sms_id] = f"unknown: {details[sms_id][1]}"
    return out


# A message the dead agent had leased but not yet committed comes back only when its lease expires:
# the server runs with a short lease (120 s by default; 5 s here, longer than a pull takes even
# on a loaded machine, so the wait for them after the restart is short too). The wait below is
# only an upper bound (the test goes on as soon as every message is final): it outlasts the
# lease and the agent's report horizon (CRASH_AGENT_OPTIONS) with room for a loaded machine.
SHORT_LEASE = ["--lease-seconds", "5"]
LEASE_EXPIRY_WAIT = 150
# The agent reports a sent message whose delivery report never comes as outcome-unknown after
# delivery_report_timeout_seconds (25 h by default); the emulator reports within a second, so a
# short horizon here only ends messages whose report really is gone. With early reports
# journaled and every report acknowledged only once journaled, none should be.
CRASH_AGENT_OPTIONS = {"retry_backoff_seconds": 0.5, "delivery_report_timeout_seconds": 45}


@pytest.mark.timeout(300)
def test_agent_killed_mid_batch_sends_nothing_twice_and_loses_nothing(
    gateway: GatewayFactory,
) -> None:
    # 0.3 s per AT+CMGS: the batch takes about 10 s, so the kill lands in the middle of it.
    stack = gateway(modems=1, dual_sim="none", profile="generic", server_args=SHORT_LEASE,
                    emulator_args=["--latency", "0.3"], agent_options=CRASH_AGENT_OPTIONS,
                    device_settings=FAST_PACING)  # fmt: skip
    stack.wait_agent_ready()
    dev = stack.devices[0]
    ids = {stack.addsms(dev, OUTSIDE, f"batch {i:02d}"): f"batch {i:02d}" for i in range(30)}
    stack.emu.wait_submitted(8, timeout=60)
    assert stack.agent is not None
    stack.agent.kill9()
    sent_before_kill = len(stack.submitted())
    assert sent_before_kill < 30, "the batch finished before the kill; the test proves nothing"
    stack.start_agent()

    # Every message reaches a final status: none is left at 6 (sent) or earlier.
    statuses = final_statuses(stack, ids, timeout=LEASE_EXPIRY_WAIT)
    counts = cmgs_per_text(stack)
    twice = {text: n for text, n in counts.items() if n > 1}
    assert not twice, f"sent more than once: {twice}"
    ends = end_states(stack, statuses)
    for sms_id, text in ids.items():
        if ends[sms_id] in ("delivered", "not delivered", "unknown: sent, no report in time"):
            assert counts[text] == 1, (text, ends[sms_id])
        if counts[text] == 0:
            assert statuses[sms_id] in SEND_FAILED, (text, ends[sms_id])
    tally = collections.Counter(ends.values())
    print(f"agent kill -9 after {sent_before_kill} of 30 submits: {dict(tally)}")
    assert sum(tally.values()) == 30
    # Only the message in flight at the kill may end otherwise than delivered: outcome-unknown
    # when the kill came between its dispatching mark and its journaled "sent". No status
    # report is lost: one that came before its "sent" was journaled is held on disk; one read
    # but not yet journaled at the kill, or printed while the agent was down, was never
    # acknowledged (AT+CNMA follows the journal write), so the network delivers it again.
    assert tally["delivered"] >= 29, tally
    assert tally["unknown: sent, no report in time"] == 0, tally


@pytest.mark.timeout(300)
def test_agent_killed_while_a_dual_sim_modem_alternates_slots(gateway: GatewayFactory) -> None:
    """The same crash on a single-standby dual-SIM modem with work for both SIMs, so the kill
    can land around an AT+CDSDS switch: each SIM's messages still leave from that SIM, once."""
    # The network holds reports for the inactive SIM until it is registered again: visit the
    # idle SIM every few seconds so they come in within the test's time.
    stack = gateway(modems=1, dual_sim="cdsds", emulator_args=["--latency", "0.3"],
                    server_args=SHORT_LEASE,
                    agent_options={**CRASH_AGENT_OPTIONS, "sim_visit_seconds": 3},
                    device_settings=FAST_PACING)  # fmt: skip
    stack.wait_agent_ready()
    dev = stack.devices[0]
    ids = {stack.addsms(dev, OUTSIDE, f"slot {i % 2} #{i:02d}", sim=i % 2): f"slot {i % 2} #{i:02d}"
           for i in range(20)}  # fmt: skip
    stack.emu.wait_submitted(6, timeout=60)
    assert stack.agent is not None
    stack.agent.kill9()
    stack.start_agent()

    statuses = final_statuses(stack, ids, timeout=LEASE_EXPIRY_WAIT)
    counts = cmgs_per_text(stack)
    assert all(n == 1 for n in counts.values()), counts
    for part in stack.submitted():
        assert part["text"].startswith(f"slot {part['slot']} "), part
    ends = end_states(stack, statuses)
    for sms_id, text in ids.items():
        if counts[text] == 0:
            assert statuses[sms_id] in SEND_FAILED, (text, ends[sms_id])
    tally = collections.Counter((int(ids[i][5]), ends[i]) for i in ids)
    print(f"dual-SIM kill -9: (slot, end state) counts {dict(tally)}")
    assert sum(tally.values()) == 20
    delivered = sum(n for (_, end), n in tally.items() if end == "delivered")
    assert delivered >= 19, tally


def test_agent_stopped_gracefully_mid_batch_resumes_without_loss_or_unknowns(
    gateway: GatewayFactory,
) -> None:
    """SIGTERM (a service restart): the part in flight finishes, the rest stays committed in the
    journal and goes out after the restart; nothing is outcome-unknown, nothing is sent twice."""
    stack = gateway(modems=1, dual_sim="none", profile="generic",
                    emulator_args=["--latency", "0.3"], device_settings=FAST_PACING)  # fmt: skip
    stack.wait_agent_ready()
    dev = stack.devices[0]
    ids = {stack.addsms(dev, OUTSIDE, f"graceful {i:02d}"): f"graceful {i:02d}" for i in range(20)}
    stack.emu.wait_submitted(5, timeout=60)
    assert stack.agent is not None
    assert stack.agent.stop(timeout=60) == 0
    stopped_after = len(stack.submitted())
    assert stopped_after < 20, "the batch finished before the stop; the test proves nothing"
    stack.start_agent()

    statuses = final_statuses(stack, ids, timeout=120)
    assert set(statuses.values()) == {DELIVERED}, statuses
    assert all(n == 1 for n in cmgs_per_text(stack).values())
    assert len(stack.submitted()) == 20


def test_server_killed_under_load_keeps_every_acknowledged_message(
    gateway: GatewayFactory,
) -> None:
    stack = gateway(modems=1, dual_sim="none", profile="generic", device_settings=FAST_PACING)
    stack.wait_agent_ready()
    dev = stack.devices[0]
    acked: dict[int, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        n = 0
        while not stop.is_set() and n < 200:
            text = f"load {worker}-{n}"
            n += 1
            try:
                sms_id = stack.addsms(dev, OUTSIDE, text)
            except (OSError, urllib.error.URLError, ValueError):
                continue  # not acknowledged: the server died under this request
            with lock:
                acked[sms_id] = text

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client, w) for w in range(8)]
        wait_until(lambda: len(acked) >= 100, 60, "100 acknowledged addsms")
        assert stack.server is not None
        stack.server.kill9()
        stop.set()
        for f in futures:
            f.result(60)
    stack.start_server()

    # Every acknowledged id is still there after the restart, and goes out exactly once.
    statuses = final_statuses(stack, acked, timeout=150)
    assert set(statuses.values()) == {DELIVERED}, collections.Counter(statuses.values())
    counts = cmgs_per_text(stack)
    assert all(counts[text] == 1 for text in acked.values())
    print(f"server kill -9 under load: {len(acked)} acknowledged, all delivered once")


# What a server reboot or a lost uplink looks like: longer than the server's lease (short here:
# OUTAGE_SERVER, so the outage can be too), with the agent backing off between tries (its
# ceiling, 7.5-15 s, is the agent's unit tests' to check).
OUTAGE_SERVER = ["--lease-seconds", "6", "--long-poll-seconds", "3"]
# The link first stalls (connections open, no bytes move) for longer than the agent's own request
# timeouts (request_timeout_seconds, 4 s here, plus the 3 s long poll for a pull), so they are
# what ends its requests.
OUTAGE_AGENT = {"request_timeout_seconds": 4}
STALL_SECONDS = 9
OUTAGE_SECONDS = STALL_SECONDS + 15


@pytest.mark.timeout(480)
def test_agent_cut_off_from_the_server_for_minutes_keeps_sending_and_reports_afterwards(
    gateway: GatewayFactory,
) -> None:
    stack = gateway(modems=1, dual_sim="none", profile="generic", with_proxy=True,
                    server_args=OUTAGE_SERVER, emulator_args=["--latency", "1"],
                    device_settings=FAST_PACING, agent_options=OUTAGE_AGENT)  # fmt: skip
    assert stack.proxy is not None
    stack.wait_agent_ready()
    dev = stack.devices[0]
    ids = {stack.addsms(dev, OUTSIDE, f"outage {i}"): f"outage {i}" for i in range(8)}
    # Committed (3) or further: from here on they are the agent's to send.
    wait_until(lambda: all(stack.status(i) >= 3 for i in ids), 60, "all committed")
    # First a stalled link: the agent's requests (its long poll, its reports) hang until its
    # own timeouts end them; then the server's host is gone (connections refused).
    stack.proxy.hold()
    outage_started = time.monotonic()

    # Sent over the air while the server cannot hear about it.
    stack.emu.wait_submitted(8, timeout=60)
    during = {i: stack.status(i) for i in ids}
    assert any(s < DELIVERED for s in during.values()), during
    time.sleep(max(0.0, STALL_SECONDS - (time.monotonic() - outage_started)))
    stack.proxy.refuse()
    # A message added once the server's end of the agent's last long poll has timed out (3 s
    # here): it waits for the agent (see the next test for one added before that).
    later = stack.addsms(dev, OUTSIDE, "added during the outage")
    time.sleep(OUTAGE_SECONDS - (time.monotonic() - outage_started))
    # Past lease expiry the server still counts the committed messages as the agent's (none
    # went back to the queue), and the one added in the outage is still waiting.
    assert stack.status(later) == 1
    assert all(stack.status(i) >= 3 for i in ids), {i: stack.status(i) for i in ids}
    stack.proxy.release()
    stack.proxy.accept()

    # The back-off ceiling is 15 s: recovery is one reconnect plus a send and its report.
    statuses = final_statuses(stack, {**ids, later: "added during the outage"}, timeout=150)
    assert set(statuses.values()) == {DELIVERED}, statuses
    counts = cmgs_per_text(stack)
    assert all(counts[t] == 1 for t in [*ids.values(), "added during the outage"]), counts


def test_message_added_right_after_the_agent_lost_its_connection_is_not_leased_to_nobody(
    gateway: GatewayFactory,
) -> None:
    stack = gateway(modems=1, dual_sim="none", profile="generic", with_proxy=True,
                    device_settings=FAST_PACING)  # fmt: skip
    assert stack.proxy is not None
    stack.wait_agent_ready()
    dev = stack.devices[0]
    time.sleep(2)  # the agent is parked in its long poll
    stack.proxy.refuse()  # resets both ends of that long poll
    time.sleep(1)
    sms_id = stack.addsms(dev, OUTSIDE, "right after the cut")
    time.sleep(2)
    assert stack.status(sms_id) == 1, "leased to a long poll whose client is gone"
