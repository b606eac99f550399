"""Campaigns over /api/v1: creation checks, the runner's window, pause/resume/cancel, schedules,
quotas, and statistics that follow the messages through the agent protocol's store calls.
The runner is driven by its own `tick()` (one at a time with its background loop)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from simhive.server.api.v1.campaign_job import RUNNER
from simhive.server.core.campaign_runner import CampaignRunner
from simhive.server.core.models import ReportEvent
from tests.server._v1 import NUMBER, V1

US = 1_000_000
NUMBERS = [f"+49157529822{n:02d}" for n in range(20, 30)]


def runner(v1: V1, window: int) -> CampaignRunner:
    app = v1.client.app
    assert app is not None
    r: CampaignRunner = app[RUNNER]
    r.window = window
    return r


async def stats(v1: V1, cid: int) -> dict[str, Any]:
    got: dict[str, Any] = await v1.ok("GET", f"/campaigns/{cid}/statistics", key="read")
    return got


def counts(s: dict[str, Any]) -> dict[str, int]:
    keys = ("pending", "queued", "unknown", "delivered", "not_delivered", "failed", "cancelled")
    return {k: s[k] for k in keys if s[k]}


async def deliver(v1: V1, lease_id: str, outcomes: list[str]) -> list[int]:
    """Lease the device's due messages and report one outcome each (sent, then more)."""
    store, now = v1.gateway.store, v1.gateway.clock()
    lease = await store.lease_due(v1.device.id, 100, lease_id, now, now + 60 * US)
    ids = [m.id for m in lease.messages]
    assert len(ids) == len(outcomes), (ids, outcomes)
    await store.commit_lease(v1.device.id, lease_id, ids, now)
    events = []
    for n, (sms_id, outcome) in enumerate(zip(ids, outcomes, strict=True)):
        if outcome == "failed":
            events.append(ReportEvent(f"{lease_id}-{n}", sms_id, "failed", now, status=9))
            continue
        events.append(ReportEvent(f"{lease_id}-{n}s", sms_id, "sent", now))
        if outcome != "sent":
            events.append(ReportEvent(f"{lease_id}-{n}r", sms_id, outcome, now + 1))
    await store.apply_events(v1.device.id, events, now + 2)
    return ids


async def test_a_campaign_runs_a_window_at_a_time_and_its_statistics_follow(v1: V1) -> None:
    r = runner(v1, 3)
    body = {"name": "spring", "text": "Sale!", "device_id": v1.device.id,
            "to": [*NUMBERS[:5], "not a number", NUMBERS[0]]}  # fmt: skip
    made = await v1.ok("POST", "/campaigns", key="send", json=body)
    assert made["recipients"] == 6  # the repeated number counts once; the bad one is refused
    await r.tick()
    s = await stats(v1, made["id"])
    assert s["state"] == "running" and s["started"] is not None
    assert counts(s) == {"pending": 2, "queued": 3, "failed": 1}
    await deliver(v1, "l1", ["delivered", "not_delivered", "failed"])
    await r.tick()  # the window has room again: the last two are queued
    assert counts(await stats(v1, made["id"])) == {
        "queued": 2, "delivered": 1, "not_delivered": 1, "failed": 2}  # fmt: skip
    await deliver(v1, "l2", ["sent", "sent"])
    await r.tick()  # nothing left to hand over, nothing waiting: finished
    s = await stats(v1, made["id"])
    assert s["state"] == "finished" and s["finished"] is not None
    assert counts(s) == {"unknown": 2, "delivered": 1, "not_delivered": 1, "failed": 2}
    assert (s["sent"], s["delivery_rate"]) == (4, 0.25)
    assert s["duration_seconds"] is not None and s["duration_seconds"] >= 0
    # its messages are ordinary messages: the list shows them with the campaign's text
    page = await v1.ok("GET", "/messages", key="read", params={"number": NUMBERS[1]})
    assert [m["text"] for m in page["messages"]] == ["Sale!"]


async def test_pause_holds_the_rest_and_resume_goes_on(v1: V1) -> None:
    r = runner(v1, 2)
    made = await v1.ok("POST", "/campaigns", key="send",
                       json={"name": "p", "text": "x", "to": NUMBERS[:4],
                             "device_id": v1.device.id})  # fmt: skip
    await r.tick()
    paused = await v1.ok("POST", f"/campaigns/{made['id']}/pause", key="send")
    assert paused["state"] == "paused"
    await deliver(v1, "l1", ["delivered", "delivered"])
    await r.tick()
    assert counts(await stats(v1, made["id"])) == {"pending": 2, "delivered": 2}
    await v1.err("POST", f"/campaigns/{made['id']}/pause", "conflict", key="send")
    resumed = await v1.ok("POST", f"/campaigns/{made['id']}/resume", key="send")
    assert resumed["state"] == "running"
    await r.tick()
    assert counts(await stats(v1, made["id"])) == {"queued": 2, "delivered": 2}


async def test_cancel_drops_the_rest_and_cancels_what_no_agent_took(v1: V1) -> None:
    r = runner(v1, 2)
    made = await v1.ok("POST", "/campaigns", key="send",
                       json={"name": "c", "text": "x", "to": NUMBERS[:5],
                             "device_id": v1.device.id})  # fmt: skip
    await r.tick()
    cancelled = await v1.ok("POST", f"/campaigns/{made['id']}/cancel", key="send")
    assert cancelled["state"] == "cancelled" and cancelled["finished"] is not None
    await r.tick()
    s = await stats(v1, made["id"])
    assert counts(s) == {"cancelled": 5}
    store, now = v1.gateway.store, v1.gateway.clock()
    lease = await store.lease_due(v1.device.id, 100, "late", now, now + 60 * US)
    assert lease.messages == []  # nothing of it is handed to an agent any more
    for action in ("pause", "resume", "cancel"):
        await v1.err("POST", f"/campaigns/{made['id']}/{action}", "conflict", key="send")


async def test_a_scheduled_campaign_waits_for_its_time(v1: V1) -> None:
    r = runner(v1, 10)
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    made = await v1.ok("POST", "/campaigns", key="send",
                       json={"name": "s", "text": "x", "to": NUMBERS[:3],
                             "send_at": later})  # fmt: skip
    assert made["state"] == "scheduled" and made["send_at"] is not None
    await r.tick()
    assert counts(await stats(v1, made["id"])) == {"pending": 3}
    await v1.ok("POST", f"/campaigns/{made['id']}/pause", key="send")
    resumed = await v1.ok("POST", f"/campaigns/{made['id']}/resume", key="send")
    assert resumed["state"] == "scheduled"  # it never started: it waits for its time again
    r.clock = lambda: v1.gateway.clock() + 2 * 3600 * US
    await r.tick()
    assert counts(await stats(v1, made["id"])) == {"queued": 3}


async def test_a_quota_pauses_the_campaign_with_the_reason(v1: V1) -> None:
    r = runner(v1, 10)
    await v1.ok("PUT", "/quotas", key="admin", json={"daily": 2, "monthly": None})
    made = await v1.ok("POST", "/campaigns", key="send",
                       json={"name": "q", "text": "x", "to": NUMBERS[:3]})  # fmt: skip
    await r.tick()
    got = await v1.ok("GET", f"/campaigns/{made['id']}", key="read")
    assert got["state"] == "paused" and "quota" in got["reason"]
    assert counts(await stats(v1, made["id"])) == {"pending": 3}  # nothing was stored
    await v1.ok("PUT", "/quotas", key="admin", json={"daily": None, "monthly": None})
    await v1.ok("POST", f"/campaigns/{made['id']}/resume", key="send")
    await r.tick()
    assert counts(await stats(v1, made["id"])) == {"queued": 3}


async def test_groups_and_templates_in_a_campaign(v1: V1) -> None:
    r = runner(v1, 10)
    gid = (await v1.ok("POST", "/groups", key="send", json={"name": "g"}))["id"]
    csv = "phone,name\n+4915752982231,Ann\n+4915752982232,\n+4915752982233,Cy\n"
    await v1.ok("POST", f"/groups/{gid}/contacts/import", key="send", json={"csv": csv})
    tid = (await v1.ok("POST", "/templates", key="send",
                       json={"name": "t", "body": "Hi {name}: {code}"}))["id"]  # fmt: skip
    made = await v1.ok(
        "POST",
        "/campaigns",
        key="send",
        json={
            "name": "g",
            "groups": [gid, gid],
            "template_id": tid,
            "variables": {"code": "7"},
            "recipients": [{"to": NUMBER, "variables": {"name": "Me", "code": "0"}}],
        },
    )
    # the contact without a name has no {name}: refused when the campaign was made
    assert made["recipients"] == 4 and made["groups"] == [gid]
    await r.tick()
    assert counts(await stats(v1, made["id"])) == {"queued": 3, "failed": 1}
    page = await v1.ok("GET", "/messages", key="read")
    assert sorted(m["text"] for m in page["messages"]) == ["Hi Ann: 7", "Hi Cy: 7", "Hi Me: 0"]
    listed = await v1.ok("GET", "/campaigns", key="read")
    assert [c["name"] for c in listed["campaigns"]] == ["g"]
    await v1.err(
        "POST",
        "/campaigns",
        "group_not_found",
        key=v1.other_key,
        json={"name": "x", "groups": [gid], "text": "hi"},
    )  # another account's


async def test_creation_refuses_what_a_send_would(v1: V1) -> None:
    ok = {"name": "n", "text": "x", "to": [NUMBER]}
    await v1.ok("POST", "/campaigns", key="send", json=ok)
    await v1.err("POST", "/campaigns", "already_exists", key="send", json=ok)
    await v1.err("POST", "/campaigns", "group_not_found", key="send",
                 json={**ok, "name": "g", "groups": [999]})  # fmt: skip
    await v1.err("POST", "/campaigns", "invalid_numbers", key="send",
                 json={"name": "e", "text": "x"})  # fmt: skip
    await v1.err("POST", "/campaigns", "invalid_numbers", key="send",
                 json={"name": "b", "text": "x", "to": ["junk"]})  # fmt: skip
    await v1.err("POST", "/campaigns", "invalid_input", key="send",
                 json={**ok, "name": "t", "template_id": 1})  # fmt: skip
    await v1.err("POST", "/campaigns", "invalid_schedule", key="send",
                 json={**ok, "name": "s", "send_at": "2001-01-01T00:00:00Z"})  # fmt: skip
    await v1.err("POST", "/campaigns", "not_found", key="send",
                 json={**ok, "name": "p", "pool": "nosuch"})  # fmt: skip
    await v1.err("POST", "/campaigns", "too_many_numbers", key="send",
                 json={"name": "m", "text": "x",
                       "to": [f"+49157{n:08d}" for n in range(10_001)]})  # fmt: skip
    listed = await v1.ok("GET", "/campaigns", key="read", params={"from": "2000-01-01"})
    assert [c["name"] for c in listed["campaigns"]] == ["n"]
