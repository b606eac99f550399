"""SIM pools end to end (docs/routing.md): real server, emulator and agents; what went over the
air is counted from the emulator's SMSC records (one entry per accepted AT+CMGS).

- a paced SIM never holds back the other SIM of its device;
- `full` rotation uses every SIM once per cycle, `partial` spreads evenly, stickiness holds;
- an unplugged modem's pool messages leave on other SIMs, pinned ones wait with a reason;
- a killed agent's leased pool messages leave on another agent's SIMs once the lease expires,
  and, since a pool message is committed only just before its send (commit = claim), that is
  every one it had not started.
Nothing is ever sent twice.
"""

from __future__ import annotations

import collections
import json
import statistics
import time
from typing import Any

import pytest

from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration

OUTSIDE = "+4917012345678"
FINAL = {6, 7, 8, 9, 10, 11, 12, 100, 101}
DUAL = {"dual_sim": "ports"}  # one AT port per SIM: both SIMs send at once
PACED = {**FAST_PACING, "sim_min_interval": 10}


def records(stack: GatewayStack, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """The emulator's submit records of messages whose text starts with `prefix`, by text."""
    out: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for rec in stack.submitted():
        if str(rec["text"]).startswith(prefix):
            out[str(rec["text"])].append(rec)
    return out


def wait_sent(
    stack: GatewayStack, prefix: str, count: int, timeout: float, modem: str | None = None
) -> dict[str, Any]:
    """Wait for `count` texts starting with `prefix` on the air (on `modem` only, if given)."""

    def probe() -> dict[str, list[dict[str, Any]]] | None:
        got = records(stack, prefix)
        mine = [r for r in got.values() if modem is None or r[0]["modem"] == modem]
        return got if len(mine) >= count else None

    try:
        return wait_until(probe, timeout, f"{count} '{prefix}' messages on the air", 0.2)
    except AssertionError:
        raise AssertionError(
            f"only {len(records(stack, prefix))}/{count}\n{stack.logs()}"
        ) from None


def ready_sims(stack: GatewayStack) -> set[tuple[int, int]]:
    """(device, slot) the server holds as ready."""
    return {sim for sim, (ready, _) in stack.sim_ready().items() if ready}


def wait_all_ready(stack: GatewayStack, timeout: float = 60) -> None:
    want = {(d.device_id, slot) for d in stack.devices for slot in (0, 1)}
    wait_until(lambda: want <= ready_sims(stack) or None, timeout, "every SIM ready")


def to_pool_batch(stack: GatewayStack, pool: str, texts: list[str], to: list[str]) -> list[int]:
    """addalotofsms with a pool per entry; ids in input order."""
    ids: list[int] = []
    for start in range(0, len(texts), 100):
        chunk = [{"sendto": to[i % len(to)], "body": texts[i], "pool": pool}
                 for i in range(start, min(start + 100, len(texts)))]  # fmt: skip
        answer = stack.api("addalotofsms", datajson=json.dumps({"smsdata": chunk}))
        ids += [int(i) for i in answer["sms_ids"]]
    return ids


def sim_of(rec: dict[str, Any]) -> tuple[str, int]:
    return (str(rec["modem"]), int(rec["slot"]))


def test_a_paced_sim_never_holds_back_the_other_sim(gateway: GatewayFactory) -> None:
    stack = gateway(modems=1, **DUAL, device_settings=PACED)
    stack.wait_agent_ready()
    dev = stack.devices[0]
    for i in range(50):
        stack.addsms(dev, OUTSIDE, f"backlog {i}", sim=0)
    wait_sent(stack, "backlog", 1, 30)  # SIM 1 is sending, and pacing holds the other 49
    asked = time.monotonic()
    stack.addsms(dev, OUTSIDE, "urgent for SIM 2", sim=1, urgent=1)
    [urgent] = wait_sent(stack, "urgent", 1, 30)["urgent for SIM 2"]
    assert urgent["slot"] == 1 and urgent["monotonic"] - asked < 2.0
    stack.addsms(dev, OUTSIDE, "normal for SIM 2", sim=1)
    [normal] = wait_sent(stack, "normal", 1, 30)["normal for SIM 2"]
    # Within SIM 2's own pacing (10 s after its last submit), not behind SIM 1's 49.
    assert normal["monotonic"] - urgent["monotonic"] < 10 + 2.0
    assert len(records(stack, "backlog")) < 10


def test_full_rotation_uses_each_sim_once_per_cycle(gateway: GatewayFactory) -> None:
    stack = gateway(modems=4, **DUAL, device_settings=FAST_PACING)
    stack.wait_agent_ready()
    stack.cli("pool", "set", "--email", stack.email, "all", "--strategy", "full")
    wait_all_ready(stack)
    texts = [f"rot {i:03d}" for i in range(400)]
    ids = to_pool_batch(stack, "all", texts, [OUTSIDE])
    sent = wait_sent(stack, "rot ", 400, 180)
    assert all(len(r) == 1 for r in sent.values())  # nothing twice
    order = [sim_of(sent[t][0]) for t in texts]  # bound in id order
    assert ids == sorted(ids)
    for cycle in range(50):
        sims = order[cycle * 8 : cycle * 8 + 8]
        assert len(set(sims)) == 8, f"cycle {cycle} used {sims}"


def test_partial_spreads_evenly_and_sticky_recipients_keep_their_sim(
    gateway: GatewayFactory,
) -> None:
    # Pacing, not the agents' speed, sets the pace, so every SIM asks for work as often.
    stack = gateway(modems=4, **DUAL, device_settings={**FAST_PACING, "sim_min_interval": 0.4})
    stack.wait_agent_ready()
    wait_all_ready(stack)
    texts = [f"part {i:03d}" for i in range(400)]
    to_pool_batch(stack, "all", texts, [OUTSIDE])
    sent = wait_sent(stack, "part ", 400, 240)
    per_sim = collections.Counter(sim_of(r[0]) for r in sent.values())
    assert len(per_sim) == 8 and all(len(r) == 1 for r in sent.values())
    mean = statistics.mean(per_sim.values())
    assert all(abs(n - mean) <= 0.2 * mean for n in per_sim.values()), per_sim

    stack.cli("pool", "create", "--email", stack.email, "chat", "--sticky")
    for dev in stack.devices:
        for slot in ("0", "1"):
            stack.cli("pool", "add-sim", "--email", stack.email, "chat",
                      "--device", str(dev.device_id), "--sim", slot)  # fmt: skip
    people = [f"+4917012345{i:03d}" for i in range(8)]
    for rnd in range(4):
        to_pool_batch(stack, "chat", [f"chat {rnd} {p}" for p in people], people)
        wait_sent(stack, f"chat {rnd} ", 8, 60)
    by_person = collections.defaultdict(set)
    for text, recs in records(stack, "chat ").items():
        by_person[text.split()[-1]].add(sim_of(recs[0]))
    assert all(len(s) == 1 for s in by_person.values()), by_person


def test_an_unplugged_modems_pool_messages_leave_on_other_sims(gateway: GatewayFactory) -> None:
    # Paced so that most of the 40 are still queued when the modem goes (1 s a SIM: four SIMs
    # send about 4 a second, two after the unplug); the pace sets how long the rest take.
    stack = gateway(modems=2, **DUAL, device_settings={**FAST_PACING, "sim_min_interval": 1},
                    server_args=["--lease-seconds", "5"])  # fmt: skip
    stack.wait_agent_ready()
    wait_all_ready(stack)
    doomed = stack.devices[0]
    pinned = stack.addsms(doomed, OUTSIDE, "pinned to the unplugged modem", sim=1)
    wait_sent(stack, "pinned", 1, 30)
    ids = [stack.to_pool("all", OUTSIDE, f"fo {i:02d}") for i in range(40)]
    wait_sent(stack, "fo ", 4, 30)
    stack.emu.unplug(doomed.modem_id)
    unplugged = time.monotonic()
    waiting = stack.addsms(doomed, OUTSIDE, "waits for its SIM", sim=1)

    def all_final() -> dict[int, int] | None:
        statuses = {i: stack.status(i) for i in ids}
        return statuses if all(s in FINAL for s in statuses.values()) else None

    statuses = wait_until(all_final, 90, "every pool message to reach a final status", 0.5)
    sent = records(stack, "fo ")
    assert all(len(r) == 1 for r in sent.values()), "a pool message went out twice"
    after = [r[0] for r in sent.values() if r[0]["monotonic"] > unplugged + 1]
    assert after and all(r["modem"] != doomed.modem_id for r in after)
    # Only a message that was on its way when the modem went is allowed an unknown outcome.
    unknown = [i for i, s in statuses.items() if s not in (6, 7)]
    assert len(unknown) <= 2, statuses
    # The pinned one waits, and says why.
    answer = stack.api("getsmsstatus", sms_id=waiting)
    assert answer["status"] in (1, 2, 3) and "not ready" in answer.get("waiting", ""), answer
    stack.emu.replug(doomed.modem_id)
    stack.wait_status(waiting, {6, 7}, timeout=60)
    assert stack.status(pinned) in (6, 7)


def test_a_killed_agents_leased_pool_messages_leave_on_another_agent(
    gateway: GatewayFactory,
) -> None:
    stack = gateway(modems=2, **DUAL, agent_count=2, server_args=["--lease-seconds", "3"],
                    device_settings={**FAST_PACING, "sim_min_interval": 1})  # fmt: skip
    stack.wait_agent_ready()
    wait_all_ready(stack)
    texts: dict[int, str] = {}
    for trial in range(3):
        ids = [stack.to_pool("all", OUTSIDE, f"kill {trial} {i:02d}") for i in range(12)]
        texts |= {i: f"kill {trial} {n:02d}" for n, i in enumerate(ids)}
        time.sleep(0.2 + 0.1 * trial)
        stack.agents[0].kill9()

        # Nothing leased to the dead agent waits for it past the lease: the other takes it.
        def settled(ids: list[int] = ids) -> bool:
            return all(stack.status(i) not in (1, 2) for i in ids)

        wait_until(lambda: settled() or None, 30, "no pool message left leased to the dead agent")
        stack.start_agent(0)
        stack.wait_agent_ready()

    # Those committed to the dead agent went out when it was back (docs/routing.md).
    def all_final() -> dict[int, int] | None:
        now = {i: stack.status(i) for i in texts}
        return now if set(now.values()) <= FINAL else None

    statuses = wait_until(all_final, 60, "every message to reach a final status", 0.5)
    sent = records(stack, "kill ")
    doubled = {t: len(r) for t, r in sent.items() if len(r) > 1}
    assert not doubled, doubled
    # A message that never went out may only be one the kill caught mid-submit (outcome
    # unknown, status 9): at most one per SIM of the killed agent per kill.
    unsent = {i: statuses[i] for i, t in texts.items() if t not in sent}
    assert set(unsent.values()) <= {9} and len(unsent) <= 2 * 3, unsent


def test_a_killed_agent_holds_no_pool_message_it_had_not_started(gateway: GatewayFactory) -> None:
    """Commit = claim: agent 0 leases 12 pool messages while its modem takes 4 s per AT+CMGS,
    so it can start only one per SIM; it is killed. Everything it had not started leaves on
    agent 1's SIMs once the 3 s leases expire, with agent 0 still dead. (When the agent
    committed at the pull, they stayed committed to the dead agent until it came back.)"""
    stack = gateway(modems=2, **DUAL, agent_count=2, server_args=["--lease-seconds", "3"],
                    device_settings=FAST_PACING)  # fmt: skip
    stack.wait_agent_ready()
    wait_all_ready(stack)
    slow, fast = stack.devices  # agent 0 drives `slow`, agent 1 `fast`
    stack.agents[1].stop()  # every pool message goes to agent 0 meanwhile
    stack.emu.set_faults(slow.modem_id, {"latency": 4.0})
    ids = [stack.to_pool("all", OUTSIDE, f"held {i:02d}") for i in range(12)]
    # Leased to agent 0; its two SIMs are each in their first AT+CMGS.
    wait_until(lambda: all(stack.status(i) in (2, 3) for i in ids) or None, 30, "all leased")
    wait_until(lambda: sum(stack.status(i) == 3 for i in ids) >= 2 or None, 30, "two sending")
    stack.agents[0].kill9()
    killed = time.monotonic()
    stack.start_agent(1)
    # At most the message on each of agent 0's two radios stays with it: everything else
    # goes out on agent 1's modem while agent 0 is dead.
    # The emulator finishes the two sends agent 0 had started, so count agent 1's alone.
    got = wait_sent(stack, "held ", 10, 60, modem=fast.modem_id)
    by_fast = [t for t, r in got.items() if r[0]["modem"] == fast.modem_id]
    assert len(by_fast) >= 10, got
    assert all(r[0]["monotonic"] > killed for t, r in got.items() if t in by_fast)
    # Agent 0 back: the ones it had started end (sent or outcome-unknown), never twice.
    stack.emu.set_faults(slow.modem_id, {"latency": None})
    stack.start_agent(0)

    def all_final() -> dict[int, int] | None:
        now = {i: stack.status(i) for i in ids}
        return now if set(now.values()) <= FINAL else None

    statuses = wait_until(all_final, 60, "every message to reach a final status", 0.5)
    sent = records(stack, "held ")
    assert not {t: len(r) for t, r in sent.items() if len(r) > 1}, sent
    texts = {i: f"held {n:02d}" for n, i in enumerate(ids)}
    unsent = {i: statuses[i] for i, t in texts.items() if t not in sent}
    assert set(unsent.values()) <= {9} and len(unsent) <= 2, unsent
