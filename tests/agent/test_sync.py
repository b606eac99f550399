"""The sync loops against the in-test server that implements docs/agent-protocol.md."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from simhive.agent.backoff import Backoff
from simhive.agent.client import AgentClient, Refused, ServerAway
from simhive.agent.http import HttpClient
from simhive.agent.journal import Journal
from simhive.agent.modem.base import IncomingSms
from simhive.agent.sync import Sync
from tests.agent.fakes import wait_for, wait_for_state
from tests.agent.fakeserver import FakeAgentServer

DEV = "hall"


def tiny(a: float, b: float) -> float:
    return 0.01  # back-off pauses of 10 ms: the loops' logic, not the wall clock, is under test


@asynccontextmanager
async def make_sync(
    server: FakeAgentServer,
    journal: Journal,
    token: str | None = None,
    claims_coming: Callable[[], bool] | None = None,
) -> AsyncIterator[tuple[Sync, list[dict[str, Any]]]]:
    settings_seen: list[dict[str, Any]] = []
    token = token or server.add_device(260)
    async with HttpClient() as session:
        client = AgentClient(server.url, token, session, timeout=5.0)

        async def hello_payload() -> tuple[dict[str, Any], list[dict[str, Any]]]:
            return {"title": DEV, "imei": "490154203237518"}, [{"slot": 0, "iccid": "8949"}]

        async def sims_payload() -> list[dict[str, Any]] | None:
            return [{"slot": 0, "signal_dbm": -70}]

        sync = Sync(device=DEV, client=client, journal=journal, slots=[0, 1],
                    hello_payload=hello_payload, sims_payload=sims_payload,
                    on_settings=settings_seen.append, on_work=lambda: None,
                    claims_coming=claims_coming, status_interval=3600, rand=tiny)  # fmt: skip
        try:
            yield sync, settings_seen
        finally:
            sync.stop()


@asynccontextmanager
async def loops(sync: Sync, *names: str) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(getattr(sync, f"{n}_loop")()) for n in names]
    try:
        yield
    finally:
        sync.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_hello_applies_server_settings(server: FakeAgentServer, journal: Journal) -> None:
    async with make_sync(server, journal) as (sync, seen):
        assert await sync.hello()
    assert sync.device_id == 260
    assert seen[0]["long_poll_seconds"] == 2 and seen[0]["sims"]["0"]["min_interval_seconds"] == 0
    assert server.hellos[0]["device"]["imei"] == "490154203237518"
    assert server.hellos[0]["sims"] == [{"slot": 0, "iccid": "8949"}]
    assert isinstance(server.hellos[0]["agent_version"], str)


async def test_pull_journals_then_commits(server: FakeAgentServer, journal: Journal) -> None:
    a = await server.add(260, "+4915100000001", "one")
    b = await server.add(260, "+4915100000002", "two", urgent=True)
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        assert await sync.pull_once() == 2
    assert server.messages[a].history == [1, 2, 3] and server.messages[b].status == 3
    m = await journal.next_due(DEV, 0, 1e12)
    assert m is not None and m.id == b and m.urgent  # urgent first
    assert await journal.backlog(DEV) == 2


async def test_long_poll_answers_as_soon_as_a_message_is_added(
    server: FakeAgentServer, journal: Journal
) -> None:
    server.settings["long_poll_seconds"] = 30
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        pull = asyncio.create_task(sync.pull_once())
        await asyncio.sleep(0.2)
        assert not pull.done()  # the server holds the poll
        await server.add(260, "+4915100000001")
        assert await asyncio.wait_for(pull, 10) == 1


async def test_rejected_ids_are_dropped(server: FakeAgentServer, journal: Journal) -> None:
    server.lease_seconds = 0.0  # every lease is already expired when the commit arrives
    a = await server.add(260, "+4915100000001")
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        assert await sync.pull_once() == 0
    assert await journal.backlog(DEV) == 0 and await journal.message_state(DEV, a) is None


async def test_lost_commit_answer_is_resolved_by_committing_again(
    server: FakeAgentServer, journal: Journal
) -> None:
    a = await server.add(260, "+4915100000001")
    server.lose["commit"] = 1  # the server commits, the answer never arrives
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        assert await sync.pull_once() == 1
    assert server.calls.count("commit") == 2
    assert server.messages[a].status == 3 and await journal.message_state(DEV, a) == "committed"


async def test_open_lease_left_by_a_crash_is_committed_at_start(
    server: FakeAgentServer, journal: Journal
) -> None:
    a = await server.add(260, "+4915100000001")
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        answer = await sync.client.pull(15, 0)  # pulled and journaled, then "crash"
        from simhive.agent.pull import _parse_messages

        msgs, _ = _parse_messages(answer["messages"])
        await journal.add_leased(DEV, answer["lease_id"], msgs, 1.0)
    assert await journal.open_leases(DEV) == {answer["lease_id"]: [a]}
    async with make_sync(server, journal) as (sync, _):
        await sync.resolve_open_leases()
    assert await journal.message_state(DEV, a) == "committed"
    assert server.messages[a].status == 3


async def test_a_pull_answer_lost_with_a_crash_is_handed_back_at_the_next_pull(
    server: FakeAgentServer, journal: Journal
) -> None:
    """A predecessor was killed after the server leased but before the answer was journaled:
    the next pull says which leases it holds (none), so the server hands that lease back at
    once instead of after lease_seconds."""
    server.lease_seconds = 3600.0
    a = await server.add(260, "+4915100000001")
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        await sync.client.pull(15, 0)  # leased, then the "crash": nothing journaled
        assert server.messages[a].status == 2
        assert await sync.pull_once() == 1
    assert server.pulls[-1]["holding"] == []
    assert server.messages[a].history == [1, 2, 1, 2, 3]
    assert await journal.message_state(DEV, a) == "committed"


async def test_a_server_from_before_holding_gets_pulls_without_it(
    server: FakeAgentServer, journal: Journal
) -> None:
    server.old_server = True
    a = await server.add(260, "+4915100000001")
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        assert await sync.pull_once() == 1
        assert await sync.pull_once() == 0
    assert [("holding" in p) for p in server.pulls] == [True, False, False]
    assert server.messages[a].status == 3


async def test_a_busy_agent_pulls_in_batches_not_one_message_per_send(
    server: FakeAgentServer, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 8 of pull_max 10 waiting locally, the next pull waits until the dispatcher has
    drained the backlog to half, then asks for 5 at once, instead of 2 now, then 1 per send."""
    monkeypatch.setattr("agent.pull.REFILL_WAIT_SECONDS", 60.0)  # only the drain ends the wait
    server.settings["pull_max"] = 10
    ids = [await server.add(260, f"+49151000000{i:02d}") for i in range(8)]
    async with make_sync(server, journal) as (sync, _), loops(sync, "pull"):
        await wait_for(lambda: all(server.messages[i].status == 3 for i in ids), what="8")
        # The server says committed before the agent's journal does (it writes after the answer).
        for i in ids:
            await wait_for_state(journal, DEV, i, "committed")
        later = await server.add(260, "+4915100000099")
        for n, i in enumerate(ids[:3]):  # the dispatcher sends three
            assert await journal.begin_dispatch(DEV, i, 1.0)
            await journal.finish_sent(DEV, i, 0, [n], 2.0)
            sync.work_done()
        await wait_for(lambda: server.messages[later].status == 3, what="the ninth")
    assert [p["max"] for p in server.pulls] == [10, 5]


async def test_message_for_a_slot_we_do_not_have_fails_cleanly(
    server: FakeAgentServer, journal: Journal
) -> None:
    a = await server.add(260, "+4915100000001", sim=5)
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        await sync.pull_once()
        await sync.flush_reports()
    assert server.messages[a].status == 9 and "slot 5" in server.messages[a].reason


async def test_reports_flush_in_order_and_a_resend_changes_nothing(
    server: FakeAgentServer, journal: Journal
) -> None:
    ids = [await server.add(260, f"+491510000000{i}") for i in range(3)]
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        await sync.pull_once()
        for i in ids:
            await journal.begin_dispatch(DEV, i, 1.0)
            await journal.finish_sent(DEV, i, 0, [i % 256], 2.0)
        await journal.finish_delivery(DEV, ids[0], True, 3.0)
        server.lose["report"] = 1  # applied, answer lost: the batch goes again
        with pytest.raises(ServerAway):
            await sync.flush_reports()
        await sync.flush_reports()
    assert [e["event_id"] for e in server.events] == [
        f"{ids[0]}:sent",
        f"{ids[1]}:sent",
        f"{ids[2]}:sent",
        f"{ids[0]}:delivered",
    ]
    assert server.messages[ids[0]].history == [1, 2, 3, 6, 7]
    assert await journal.count_pending_events(DEV, "report") == 0


async def test_report_events_reach_the_server_exactly_as_journaled(
    server: FakeAgentServer, journal: Journal
) -> None:
    """The report loop sends the journaled JSON as it is (not decoded and encoded again): the
    server gets the same objects, non-ASCII text included."""
    a = await server.add(260, "+4915100000001")
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        await sync.pull_once()
        await journal.begin_dispatch(DEV, a, 1.0)
        await journal.finish_failed(
            DEV, a, status=9, code="CMS 500", reason="Netz gestört: «ü» 😀", now=2.0
        )
        journaled = [e.body for e in await journal.pending_events(DEV, "report", 10)]
        await sync.flush_reports()
    assert server.events == journaled
    assert server.events[0]["reason"] == "Netz gestört: «ü» 😀"
    assert server.messages[a].reason == "Netz gestört: «ü» 😀"


async def test_server_away_then_back_reports_all_arrive(
    server: FakeAgentServer, journal: Journal
) -> None:
    a = await server.add(260, "+4915100000001")
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        await sync.pull_once()
        server.down = True
        await journal.begin_dispatch(DEV, a, 1.0)
        await journal.finish_sent(DEV, a, 0, [7], 2.0)
        async with loops(sync, "report"):
            sync.wake_reports()
            await wait_for(lambda: server.calls.count("report") >= 3, what="retries")
            assert not sync.connected
            server.down = False
            await wait_for(lambda: server.messages[a].status == 6, what="the sent report")
    assert sync.connected


async def test_reports_coming_steadily_share_one_request_per_spacing(
    server: FakeAgentServer, journal: Journal
) -> None:
    """Under load each device sends at most one report request per `report_spacing`: events
    written one by one, further apart than the gather time, leave together after the first."""
    ids = [await server.add(260, f"+491510000000{i}") for i in range(6)]
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        await sync.pull_once()
        sync.report_spacing = 3.0  # far longer than the writes below take
        async with loops(sync, "report"):
            await journal.begin_dispatch(DEV, ids[0], 1.0)
            await journal.finish_sent(DEV, ids[0], 0, [1], 2.0)
            sync.wake_reports()
            await wait_for(lambda: server.calls.count("report") == 1, what="the first report")
            for i in ids[1:]:
                await journal.begin_dispatch(DEV, i, 1.0)
                await journal.finish_sent(DEV, i, 0, [i % 256], 2.0)
                sync.wake_reports()
                await asyncio.sleep(0.1)  # twice the gather time: each would be a request
            await wait_for(lambda: len(server.events) == 6, what="all six reports")
            assert server.calls.count("report") == 2
    assert [e["event_id"] for e in server.events] == [f"{i}:sent" for i in ids]


async def test_pull_loop_keeps_going_through_an_outage(
    server: FakeAgentServer, journal: Journal
) -> None:
    async with make_sync(server, journal) as (sync, _):
        server.down = True
        async with loops(sync, "pull"):
            await wait_for(lambda: server.calls.count("hello") >= 2, what="hello retries")
            server.down = False
            a = await server.add(260, "+4915100000001")
            await wait_for(lambda: server.messages[a].status == 3, what="commit after outage")


async def test_pull_stops_when_the_backlog_is_full(
    server: FakeAgentServer, journal: Journal
) -> None:
    server.settings["pull_max"] = 2
    for i in range(5):
        await server.add(260, f"+491510000000{i}")
    async with make_sync(server, journal) as (sync, _):
        await sync.hello()
        assert await sync.pull_once() == 2
        assert await sync.pull_once() is None  # no room: do not hoard leases
    assert sum(m.status == 1 for m in server.messages.values()) == 3


async def test_incoming_is_forwarded_once_per_key(
    server: FakeAgentServer, journal: Journal
) -> None:
    now = datetime(2026, 11, 22, 4, 34, 5, tzinfo=UTC)
    sms = IncomingSms(
        slot=1,
        sender="+4917012345",
        text="Hallo",
        sent_at=now,
        received_at=now,
        key="26201:+4917012345:k1",
    )
    async with make_sync(server, journal) as (sync, _):
        await journal.add_incoming(DEV, sms)
        assert await sync.forward_incoming_now(sms.key, 5.0)
        await journal.add_incoming(DEV, sms)  # a re-read: the journal already has it
        await sync.flush_incoming()
    assert list(server.incoming) == [sms.key]
    stored = server.incoming[sms.key]
    assert stored["from"] == "+4917012345" and stored["sim"] == 1 and stored["body"] == "Hallo"


async def test_incoming_while_server_away_stays_in_the_journal(
    server: FakeAgentServer, journal: Journal
) -> None:
    now = datetime.now(UTC)
    sms = IncomingSms(
        slot=0, sender="+4917012345", text="x", sent_at=now, received_at=now, key="k-away"
    )
    server.down = True
    async with make_sync(server, journal) as (sync, _):
        await journal.add_incoming(DEV, sms)
        assert not await sync.forward_incoming_now(sms.key, 2.0)
        server.down = False
        await sync.flush_incoming()
    assert await journal.is_forwarded(DEV, "k-away") and "k-away" in server.incoming


async def test_status_carries_sims_and_queued_events(
    server: FakeAgentServer, journal: Journal
) -> None:
    await journal.add_event(
        DEV,
        "status",
        {
            "event_id": "modem:1",
            "at": "x",
            "kind": "modem",
            "state": "disconnected",
            "reason": "port closed",
        },
    )
    async with make_sync(server, journal) as (sync, _):
        await sync.flush_status()
    assert server.statuses[0]["sims"] == [{"slot": 0, "signal_dbm": -70}]
    assert server.statuses[0]["events"][0]["state"] == "disconnected"
    assert await journal.count_pending_events(DEV, "status") == 0


async def test_wrong_token_is_refused_not_retried_fast(
    server: FakeAgentServer, journal: Journal
) -> None:
    async with make_sync(server, journal, token="not-a-token") as (sync, _):
        with pytest.raises(Refused) as info:
            await sync.client.pull(1, 0)
    assert info.value.status == 401 and info.value.code == "unauthorized"
    assert "not-a-token" not in str(info.value)


async def test_unreachable_server_is_server_away(journal: Journal) -> None:
    # A bound but not listening socket: connections are refused for as long as we hold it
    # (a "free" port could be taken by another test's server meanwhile).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with HttpClient() as session:
            client = AgentClient(f"http://127.0.0.1:{port}", "t", session, timeout=2)
            with pytest.raises(ServerAway):
                await client.hello({}, [])


def test_backoff_grows_with_full_jitter_and_resets() -> None:
    seen: list[tuple[float, float]] = []

    def rand(a: float, b: float) -> float:
        seen.append((a, b))
        return b

    b = Backoff(base=1, cap=8, rand=rand)
    assert [b.next() for _ in range(5)] == [1, 2, 4, 8, 8]
    assert seen[0] == (0.5, 1.0)
    b.reset()
    assert b.next() == 1


def test_server_backoff_tries_again_within_15_s_however_long_the_outage() -> None:
    b = Backoff(rand=lambda a, c: c)
    waits = [b.next() for _ in range(40)]
    assert waits[:5] == [1, 2, 4, 8, 15] and max(waits) == 15
