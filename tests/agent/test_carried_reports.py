"""Report events ride along with claims (agent/sync.py, `Sync.commit`; docs/agent-protocol.md,
`commit`): under load a pool message is claimed every few sends, and the report events written
meanwhile go with the claim instead of in a `report` request of their own. In one process, with
a fake modem and the in-test protocol server (tests/agent/fakeserver.py); the test lets each
claim go only once the previous send's events are on disk, so which request carries what is
fixed, not a matter of timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from simhive.agent import sync as sync_module
from simhive.agent.claim import Claimer
from simhive.agent.dispatcher import Dispatcher, DispatchPolicy
from simhive.agent.journal import Journal, LeasedMessage
from simhive.agent.modem.base import ModemState
from simhive.agent.pacing import Pacer, SimLimits
from simhive.agent.sync import Sync
from tests.agent.fakes import FakeModem, wait_for
from tests.agent.fakeserver import FakeAgentServer
from tests.agent.test_pools import DEV, Clock
from tests.agent.test_sync import loops, make_sync

UNPACED = SimLimits(0, None, None, None, None)


async def lease_pool(server: FakeAgentServer, sync: Sync, journal: Journal, n: int) -> list[int]:
    """n pool messages leased to SIM 0 by a real pull, journaled as the pull loop would."""
    server.pools["otp"] = [(260, 0)]
    ids = [await server.add_pool_message("otp", f"+491510000000{i}") for i in range(n)]
    answer = await sync.client.pull(
        15, 0, [], [{"slot": 0, "ready": True, "room": 15, "pool_room": 15}]
    )
    msgs = [LeasedMessage(m["id"], m["to"], m["body"], m["sim"], False, m["pool"])
            for m in answer["messages"]]  # fmt: skip
    await journal.add_leased(DEV, answer["lease_id"], msgs, 1.0)
    assert sorted(m.id for m in msgs) == ids
    return ids


@asynccontextmanager
async def claiming(
    sync: Sync, journal: Journal, modem: FakeModem
) -> AsyncIterator[tuple[asyncio.Queue[None], list[int]]]:
    """A dispatcher whose claims go through sync.commit, one claim per send (the fake clock
    measures every submit as taking no time, so none is taken along: agent/dispatcher.py,
    _claim_batch). Each claim waits for a turn the test gives; `journaled` grows once a
    send's events are on disk and the sync loops have heard of them (as the runner wires it)."""
    claimer = Claimer(DEV, sync.commit)
    turns: asyncio.Queue[None] = asyncio.Queue()
    journaled: list[int] = []

    async def claim(claims: Sequence[tuple[str, int]]) -> list[bool | None]:
        await turns.get()
        return await claimer.claim(claims)

    def done() -> None:
        journaled.append(1)
        sync.wake_reports()

    modem.set_state(ModemState.READY)
    clock = Clock()
    disp = Dispatcher(device=DEV, modem=modem, journal=journal,
                      pacers={0: Pacer(UNPACED, clock=clock)}, policy=DispatchPolicy(),
                      on_done=done, claim=claim, clock=clock)  # fmt: skip
    task = asyncio.create_task(disp.run())
    try:
        yield turns, journaled
    finally:
        disp.stop()
        turns.put_nowait(None)  # a claim waiting for its turn lets the dispatcher stop
        await task


async def claim_and_send(turns: asyncio.Queue[None], journaled: list[int], n: int) -> None:
    """Let n claims go, one at a time, each once the send before it is journaled."""
    for k in range(1, n + 1):
        turns.put_nowait(None)

        def sent(k: int = k) -> bool:
            return len(journaled) == k

        await wait_for(sent, what=f"send {k}")


async def test_each_claim_carries_the_events_of_the_sends_before_it(
    server: FakeAgentServer, journal: Journal
) -> None:
    async with make_sync(server, journal) as (sync, _):
        ids = await lease_pool(server, sync, journal, 4)
        modem = FakeModem()
        async with claiming(sync, journal, modem) as (turns, journaled):
            await claim_and_send(turns, journaled, 4)
        # Four claims, the last three with the "sent" event of the send before: no report
        # request of their own (the old agent made one per claim here, from its report loop).
        assert server.calls.count("commit") == 4
        assert server.calls.count("report") == 0
        assert ["events" in body for body in server.commits] == [False, True, True, True]
        assert [e["sms_id"] for e in server.events] == ids[:3]
        assert [server.messages[i].status for i in ids] == [6, 6, 6, 3]
        assert sync.reports_carried == 3
        # The last send's event: nothing more to claim, so the report loop sends it.
        await sync.flush_reports()
        assert server.calls.count("report") == 1
        assert [server.messages[i].status for i in ids] == [6, 6, 6, 6]
        assert await journal.count_pending_events(DEV, "report") == 0


async def test_a_server_that_ignores_events_in_a_commit_gets_reports_as_before(
    server: FakeAgentServer, journal: Journal
) -> None:
    server.commit_reports = False  # like a server from before reports rode with commits
    async with make_sync(server, journal) as (sync, _):
        ids = await lease_pool(server, sync, journal, 3)
        modem = FakeModem()
        async with claiming(sync, journal, modem) as (turns, journaled):
            await claim_and_send(turns, journaled, 3)
        # Tried once (its answer had no `accepted`), never again; the claims all went through.
        assert ["events" in body for body in server.commits] == [False, True, False]
        assert [server.messages[i].status for i in ids] == [3, 3, 3]  # none reported yet
        assert await journal.count_pending_events(DEV, "report") == 3
        await sync.flush_reports()
        assert server.calls.count("report") == 1
        assert [server.messages[i].status for i in ids] == [6, 6, 6]


async def test_a_refused_event_never_costs_the_claim(
    server: FakeAgentServer, journal: Journal
) -> None:
    async with make_sync(server, journal) as (sync, _):
        ids = await lease_pool(server, sync, journal, 2)
        # An event the server refuses (400 for the whole request it is in).
        await journal.add_event(DEV, "report", {"event_id": "bad", "sms_id": ids[0],
                                                "type": "bogus", "at": "x"})  # fmt: skip
        sync.wake_reports()
        modem = FakeModem()
        async with claiming(sync, journal, modem) as (turns, journaled):
            await claim_and_send(turns, journaled, 2)
        # The first claim carried it, was refused, and went again alone; the next carried
        # nothing (carrying waits a while after a refusal). Both messages were sent.
        assert ["events" in body for body in server.commits] == [True, False, False]
        assert [s.number for s in modem.submits] == [server.messages[i].to for i in ids]
        # The report loop finds the bad event on its own and sends the rest.
        await sync.flush_reports()
        assert [server.messages[i].status for i in ids] == [6, 6]
        assert await journal.count_pending_events(DEV, "report") == 0


def test_docs_state_how_many_events_ride_with_a_commit() -> None:
    root = Path(__file__).resolve().parents[2] / "docs"
    n = sync_module.REPORTS_WITH_COMMIT
    for page, words in (("agent.md", f"(up to {n})"), ("agent-protocol.md", f"at most {n}")):
        assert words in " ".join((root / page).read_text().split()), page
    assert sync_module.CLAIM_PACE_SECONDS == 1.0  # agent.md: "more often than once a second"
    assert "more often than once a second" in " ".join((root / "agent.md").read_text().split())


async def test_while_claims_come_the_report_loop_leaves_events_to_the_next_claim(
    server: FakeAgentServer, journal: Journal
) -> None:
    """The report loop's side of carrying (Sync._hold_reports): while a dispatcher claims pool
    messages more often than once a second, events written between two claims wait for the next
    claim instead of going in a `report` of their own; once the claims stop, the loop reports
    at once. The two claims before are 0.6 s apart, so the loop holds the events for up to
    0.9 s after the second; the test sends the third claim as soon as it sees the loop holding,
    so nothing here depends on how fast the machine is."""
    coming = [True]
    async with make_sync(server, journal, claims_coming=lambda: coming[0]) as (sync, _):
        ids = await lease_pool(server, sync, journal, 4)
        lease = server.messages[ids[0]].lease
        assert lease is not None
        claimer = Claimer(DEV, sync.commit)
        assert await claimer.claim([(lease, ids[0])]) == [True]
        await asyncio.sleep(0.6)
        assert await claimer.claim([(lease, ids[1])]) == [True]

        held: list[float | None] = []
        hold = sync._hold_reports

        def watched() -> float | None:
            held.append(hold())
            return held[-1]

        sync._hold_reports = watched  # type: ignore[method-assign]
        async with loops(sync, "report"):
            await journal.add_event(DEV, "report", sent_event(ids[0]))
            sync.wake_reports()
            await wait_for(lambda: any(h is not None for h in held), what="the loop holding")
            assert await claimer.claim([(lease, ids[2])]) == [True]  # takes the event along
            assert "events" in server.commits[-1]
            assert server.messages[ids[0]].status == 6

            coming[0] = False  # the dispatchers found nothing more to claim
            await journal.add_event(DEV, "report", sent_event(ids[1]))
            sync.wake_reports()
            await wait_for(lambda: server.messages[ids[1]].status == 6, what="the report")
        # One report request in all: the one after the claims stopped.
        assert server.calls.count("report") == 1
        assert server.calls.count("commit") == 3


def sent_event(sms_id: int) -> dict[str, object]:
    return {"event_id": f"sent-{sms_id}", "sms_id": sms_id, "type": "sent",
            "at": "2026-12-07T06:00:00+00:00"}  # fmt: skip
