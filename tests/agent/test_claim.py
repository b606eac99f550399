"""Commit = claim (agent/claim.py, docs/routing.md): a pool message is committed only just before
its AT+CMGS, and sent only when the server answered "committed"; a lost answer keeps it (the
repeat answers the same), a rejection drops it unsent. In one process, with a fake modem and
the in-test protocol server (tests/agent/fakeserver.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from simhive.agent import dispatcher as dispatcher_module
from simhive.agent.claim import Claimer
from simhive.agent.client import AgentClient
from simhive.agent.http import HttpClient
from simhive.agent.journal import Journal, LeasedMessage
from simhive.agent.modem.base import ModemState
from simhive.agent.pacing import SimLimits
from tests.agent.fakes import FakeModem, wait_for
from tests.agent.fakeserver import FakeAgentServer
from tests.agent.test_pools import DEV, Clock, make_dispatcher, runner_for, states

UNPACED = SimLimits(0, None, None, None, None)


async def test_a_pool_message_is_committed_only_when_its_sim_is_about_to_send_it(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    server.pools["otp"] = [(260, 0)]
    pool = [await server.add_pool_message("otp", f"+49151000000{i}") for i in range(4)]
    modem = FakeModem()
    modem.gate = asyncio.Event()  # the first submit hangs
    async with runner_for(server, journal, tmp_path, modem):
        await asyncio.wait_for(modem.in_send.wait(), 15)
        await wait_for(lambda: all(server.messages[i].status >= 2 for i in pool), what="leased")
        # On the radio: committed. Waiting behind it: leased only, so they would go back to
        # the pool if this agent died now.
        assert [server.messages[i].status for i in pool] == [3, 2, 2, 2]
        assert await states(journal, pool) == ["dispatching", "leased", "leased", "leased"]
        modem.gate.set()
        await wait_for(lambda: all(server.messages[i].status == 6 for i in pool), what="sent")
    assert sorted(s.number for s in modem.submits) == sorted(server.messages[i].to for i in pool)
    # Each was committed (status 3) just before its send, never before the previous one was sent.
    for i in pool:
        assert server.messages[i].history == [1, 2, 3, 6]


async def test_a_lost_claim_answer_keeps_the_message_and_the_repeat_sends_it_once(
    server: FakeAgentServer, journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatcher_module, "CLAIM_RETRY_SECONDS", 0.2)
    server.pools["otp"] = [(260, 0)]
    server.lose["commit"] = 1  # the server commits the first claim, its answer is lost
    msg = await server.add_pool_message("otp", "+4915100000001")
    modem = FakeModem()
    async with runner_for(server, journal, tmp_path, modem):
        await wait_for(lambda: server.messages[msg].status == 6, what="sent after the repeat")
    assert [s.number for s in modem.submits] == ["+4915100000001"]
    assert server.calls.count("commit") == 2  # the lost one and its repeat
    assert server.messages[msg].history == [1, 2, 3, 6]  # never back in the pool


async def test_no_claim_answer_holds_only_pool_messages_and_a_rejected_claim_drops_one(
    journal: Journal,
) -> None:
    await journal.add_leased(DEV, "L1", [
        LeasedMessage(1, "+49151000001", "pool, urgent", 0, True, "otp"),
        LeasedMessage(2, "+49151000002", "pinned", 0, False),
        LeasedMessage(3, "+49151000003", "pool, gone", 0, False, "otp"),
    ], 1.0)  # fmt: skip
    await journal.apply_commit(DEV, "L1", [2], [])
    answers: dict[int, list[bool | None]] = {1: [None, True], 3: [False]}
    asked: list[tuple[str, int]] = []

    async def claim(claims: Sequence[tuple[str, int]]) -> list[bool | None]:
        asked.extend(claims)
        return [answers[msg_id].pop(0) for _, msg_id in claims]

    clock = Clock()
    modem = FakeModem()
    modem.set_state(ModemState.READY)
    disp = make_dispatcher(journal, modem, [0], UNPACED, clock, claim=claim)
    task = asyncio.create_task(disp.run())
    # No answer for the urgent pool message: the SIM's pool messages wait (any of them may
    # be committed with its answer lost), the pinned one goes meanwhile.
    await wait_for(lambda: len(modem.submits) == 1, what="the pinned message sent")
    assert [s.text for s in modem.submits] == ["pinned"]
    assert asked == [("L1", 1)]
    assert await states(journal, [1, 3]) == ["leased", "leased"]  # kept, not dropped
    clock.now += dispatcher_module.CLAIM_RETRY_SECONDS
    disp.wake()
    await wait_for(lambda: len(asked) == 3, what="both pool messages claimed again")
    await wait_for(lambda: len(modem.submits) == 2, what="the pool message sent after all")
    disp.stop()
    await task
    assert [s.text for s in modem.submits] == ["pinned", "pool, urgent"]
    assert asked == [("L1", 1), ("L1", 1), ("L1", 3)]
    assert await journal.message_state(DEV, 3) is None  # rejected: not ours, never sent
    assert disp.claims_lost == 1


async def test_a_dispatcher_without_claims_never_sends_a_leased_pool_message(
    journal: Journal,
) -> None:
    await journal.add_leased(DEV, "L1", [
        LeasedMessage(1, "+49151000001", "pool", 0, True, "otp"),
        LeasedMessage(2, "+49151000002", "pinned", 0, False),
    ], 1.0)  # fmt: skip
    await journal.apply_commit(DEV, "L1", [2], [])
    modem = FakeModem()
    modem.set_state(ModemState.READY)
    disp = make_dispatcher(journal, modem, [0], UNPACED, Clock())
    task = asyncio.create_task(disp.run())
    await wait_for(lambda: len(modem.submits) == 1, what="the pinned message sent")
    await asyncio.sleep(0.2)
    disp.stop()
    await task
    assert [s.text for s in modem.submits] == ["pinned"]
    assert await journal.message_state(DEV, 1) == "leased"


async def test_pool_messages_leased_before_a_crash_are_claimed_and_sent_after_the_restart(
    server: FakeAgentServer, journal: Journal, tmp_path: Path
) -> None:
    server.pools["otp"] = [(260, 0)]
    ids = [await server.add_pool_message("otp", f"+49151000000{i}") for i in range(2)]
    pinned = await server.add(260, "+4915100000009")
    token = server.add_device(260)
    async with HttpClient() as session:
        client = AgentClient(server.url, token, session)
        answer = await client.pull(
            15, 0, [], [{"slot": 0, "ready": True, "room": 15, "pool_room": 15}]
        )
        msgs = [LeasedMessage(m["id"], m["to"], m["body"], m["sim"], False, m["pool"])
                for m in answer["messages"]]  # fmt: skip
        # The crashed life journaled the pull answer and died before any commit.
        await journal.add_leased(DEV, answer["lease_id"], msgs, 1.0)
    modem = FakeModem()
    async with runner_for(server, journal, tmp_path, modem):
        await wait_for(
            lambda: all(server.messages[i].status == 6 for i in [*ids, pinned]), what="all sent"
        )
    assert sorted(s.number for s in modem.submits) == sorted(
        server.messages[i].to for i in [*ids, pinned]
    )
    assert all(server.messages[i].history == [1, 2, 3, 6] for i in [*ids, pinned])


@pytest.mark.parametrize(("min_interval", "claims"), [(0, [[1, 2, 3], [4]]), (1, [[1], [2]])])
async def test_a_claim_takes_along_what_the_sim_starts_within_the_claim_horizon(
    journal: Journal, min_interval: int, claims: list[list[int]]
) -> None:
    """Submits take 40 ms here: an unpaced SIM starts 1 + 0.1 s / 40 ms = 3 within the claim
    horizon, so one claim (one round trip) covers 3 of its lease's messages; another lease's
    message gets its own. A SIM paced to one send a second claims one at a time."""
    await journal.add_leased(DEV, "L1", [
        LeasedMessage(i, f"+4915100000{i}", f"pool {i}", 0, False, "otp") for i in (1, 2, 3)
    ], 1.0)  # fmt: skip
    await journal.add_leased(DEV, "L2", [LeasedMessage(4, "+49151000004", "pool 4", 0, False,
                                                       "otp")], 1.0)  # fmt: skip
    rounds: list[list[int]] = []

    async def claim(claims: Sequence[tuple[str, int]]) -> list[bool | None]:
        rounds.append([msg_id for _, msg_id in claims])  # claims made together: one call
        return [True] * len(claims)

    clock = Clock()
    modem = FakeModem()
    modem.set_state(ModemState.READY)
    disp = make_dispatcher(journal, modem, [0], SimLimits(min_interval, None, None, None, None),
                           clock, claim=claim)  # fmt: skip
    disp.state[0].send_seconds = 0.04  # as measured on earlier sends
    task = asyncio.create_task(disp.run())
    await wait_for(lambda: disp.state[0].sent >= 1, what="the first send")
    if min_interval:
        clock.now += min_interval
        disp.wake()
    sends = sum(len(r) for r in claims)
    await wait_for(lambda: len(modem.submits) == sends, what="the claimed ones sent")
    disp.stop()
    await task
    assert rounds == claims
    assert [s.text for s in modem.submits] == [f"pool {i}" for i in range(1, sends + 1)]


def test_docs_state_the_claim_horizon_and_retry() -> None:
    root = Path(__file__).resolve().parents[2] / "docs"
    for page in ("agent.md", "agent-protocol.md", "routing.md"):
        text = " ".join((root / page).read_text().split())
        assert f"within {dispatcher_module.CLAIM_AHEAD_SECONDS:g} s" in text, page
    for page in ("agent.md", "agent-protocol.md"):
        text = " ".join((root / page).read_text().split())
        assert f"again after {dispatcher_module.CLAIM_RETRY_SECONDS:g} s" in text, page


class _CommitRecorder:
    """AgentClient.commit as the Claimer uses it; records each request and the live tasks."""

    def __init__(self, rejected: set[int]) -> None:
        self.requests: list[tuple[str, list[int]]] = []
        self.tasks_during: list[int] = []
        self.rejected = rejected

    async def commit(self, lease_id: str, ids: list[int]) -> dict[str, list[int]]:
        self.requests.append((lease_id, ids))
        self.tasks_during.append(len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        return {"committed": [i for i in ids if i not in self.rejected]}


async def test_claims_made_together_go_in_one_request_per_lease_without_a_task_per_claim() -> None:
    client = _CommitRecorder(rejected={3})
    claimer = Claimer(DEV, client.commit)
    before = len(asyncio.all_tasks())
    answers = await claimer.claim([("L1", 1), ("L1", 2), ("L1", 3)])
    assert answers == [True, True, False]
    assert client.requests == [("L1", [1, 2, 3])]
    # Only the Claimer's own request task runs beside the caller: none per claim or lease.
    assert client.tasks_during == [before + 1]
    answers = await claimer.claim([("L1", 4), ("L2", 5), ("L1", 6)])
    assert answers == [True, True, True]
    assert sorted(client.requests[1:]) == [("L1", [4, 6]), ("L2", [5])]
    assert claimer.requests == 3
    assert await claimer.claim([]) == []
    assert claimer.requests == 3
