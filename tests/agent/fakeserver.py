"""A small in-test server for /agent/v1/*, written from docs/agent-protocol.md alone.

It stands in for the real server until its agent routes land, and it is kept honest to the doc:
bearer auth (401), the error shape, leases that expire back to status 1, commit per id like the
real server (an id committed before answers "committed" again; ids of one lease may be committed
in several calls, as the agent's claims do), report events applied at most once with statuses
never moving backwards, incoming keys stored once, long-poll pull that answers the instant a
message is added. Faults are injected per route: answer 503 without doing anything, or do the
work and lose the answer.

A `commit` may carry report events (`events`, as in `report`): they are checked before the
commit is done and applied after it, and the answer lists them in `accepted`.

SIM pools (docs/agent-protocol.md): a pull with `sims` leases per listed ready slot at most
`room` messages, of which at most `pool_room` pool messages it binds to that slot now; a newer
pull of a device ends its older parked one (409); `release` puts pool messages back in their
pool unbound and keeps pinned ones; a lease that expires puts them back unbound too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

RANK = {1: 0, 2: 1, 3: 2, 6: 3, 7: 4, 8: 4, 9: 4, 10: 4, 11: 4, 12: 4, 100: 4, 101: 4}
TYPE_STATUS = {"sent": 6, "delivered": 7, "not_delivered": 8, "unknown": 9}


@dataclass
class Msg:
    id: int
    device: int  # 0 while a pool message is unbound
    to: str
    body: str
    sim: int  # -1 while a pool message is unbound
    urgent: bool
    pool: str | None = None
    status: int = 1
    lease: str | None = None
    attempt: int = 0
    history: list[int] = field(default_factory=lambda: [1])
    parts: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""


@dataclass
class Lease:
    device: int
    ids: list[int]
    expires: float
    answer: dict[str, Any] | None = None


class FakeAgentServer:
    def __init__(self, *, settings: dict[str, Any] | None = None, lease_seconds: float = 120.0):
        self.tokens: dict[str, int] = {}
        self.messages: dict[int, Msg] = {}
        self.leases: dict[str, Lease] = {}
        self.applied: set[str] = set()
        self.events: list[dict[str, Any]] = []  # every event applied, in order
        self.incoming: dict[str, dict[str, Any]] = {}
        self.hellos: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.lease_seconds = lease_seconds
        self.settings = settings or {
            "delaybetweenrequest": 1,
            "delaybetweeneachsms": None,
            "pull_max": 15,
            "lease_seconds": lease_seconds,
            "long_poll_seconds": 2,
            "sims": {
                "0": {
                    "min_interval_seconds": 0,
                    "per_minute": None,
                    "per_hour": None,
                    "per_day": None,
                },
                "1": {
                    "min_interval_seconds": 0,
                    "per_minute": None,
                    "per_hour": None,
                    "per_day": None,
                },
            },
        }
        self.fail: dict[str, int] = {}  # route -> number of 503s to answer without acting
        self.lose: dict[str, int] = {}  # route -> number of answers to lose after acting
        self.pulls: list[dict[str, Any]] = []  # every pull body, in order
        self.old_server = False  # True: refuse `holding` in pull, like a server from before it
        self.refuse_sims = False  # True: refuse `sims` in pull, like a server from before pools
        self.pools: dict[str, list[tuple[int, int]]] = {}  # name -> member (device, slot)s
        self.sim_reasons: dict[tuple[int, int], str] = {}  # why a SIM said it is not ready
        self.releases: list[dict[str, Any]] = []  # every release body, in order
        self.commit_reports = True  # False: ignore `events` in commit, like a server from before
        self.commits: list[dict[str, Any]] = []  # every commit body, in order
        self.commits_with_reports = 0  # commits that carried report events the server took
        self.conflicts = 0  # parked pulls ended by a newer pull of their device
        self._pull_gen: dict[int, int] = {}
        self.down = False
        self.closing = False
        self._ids = itertools.count(1000)
        self._sms_ids = itertools.count(50000)
        self._changed = asyncio.Condition()
        self.app = web.Application(client_max_size=1024 * 1024)
        for route in ("hello", "pull", "commit", "report", "incoming", "status", "release"):
            self.app.router.add_post(f"/agent/v1/{route}", self._wrap(route))
        self.runner: web.AppRunner | None = None
        self.url = ""

    # -- test API -----------------------------------------------------------------------------

    def add_device(self, device_id: int) -> str:
        token = secrets.token_urlsafe(16)
        self.tokens[token] = device_id
        return token

    async def add(
        self, device: int, to: str, body: str = "hi", sim: int = 0, urgent: bool = False
    ) -> int:
        m = Msg(next(self._ids), device, to, body, sim, urgent)
        self.messages[m.id] = m
        await self.changed()
        return m.id

    async def add_pool_message(
        self, pool: str, to: str, body: str = "hi", urgent: bool = False
    ) -> int:
        m = Msg(next(self._ids), 0, to, body, -1, urgent, pool=pool)
        self.messages[m.id] = m
        await self.changed()
        return m.id

    async def changed(self) -> None:
        """Wake parked pulls (a message added or released, a pool changed)."""
        async with self._changed:
            self._changed.notify_all()

    async def start(self, port: int = 0) -> str:
        # Like the real server: a client that goes away cancels its handler (a parked pull).
        self.runner = web.AppRunner(self.app, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        self.closing = True  # release held long polls at once
        async with self._changed:
            self._changed.notify_all()
        if self.runner is not None:
            await self.runner.cleanup()

    # -- plumbing -----------------------------------------------------------------------------

    def _wrap(self, route: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            self.calls.append(route)
            if self.down or self.fail.get(route, 0) > 0:
                if not self.down:
                    self.fail[route] -= 1
                return _err(503, "unavailable", "try later")
            auth = request.headers.get("Authorization", "")
            device = (
                self.tokens.get(auth.removeprefix("Bearer "))
                if auth.startswith("Bearer ")
                else None
            )
            if device is None:
                return _err(401, "unauthorized", "missing or wrong device token")
            try:
                body = await request.json()
            except (ValueError, UnicodeDecodeError):
                return _err(400, "bad_request", "body is not JSON")
            if not isinstance(body, dict):
                return _err(400, "bad_request", "body must be a JSON object")
            self._expire()
            answer = await getattr(self, f"_{route}")(device, body)
            if isinstance(answer, web.Response):
                return answer
            if self.lose.get(route, 0) > 0:
                self.lose[route] -= 1
                return _err(503, "unavailable", "answer lost")
            return web.json_response(answer)

        return handler

    def _expire(self) -> None:
        now = time.time()
        for lease_id, lease in list(self.leases.items()):
            if lease.expires <= now:
                for i in lease.ids:
                    m = self.messages[i]
                    if m.status == 2 and m.lease == lease_id:
                        self._unlease(m)

    def _unlease(self, m: Msg) -> None:
        """Back to the queue; a pool message back to its pool, unbound."""
        self._set(m, 1)
        m.lease = None
        if m.pool is not None:
            m.device, m.sim = 0, -1

    def _set(self, m: Msg, status: int) -> None:
        m.status = status
        m.history.append(status)

    # -- routes -------------------------------------------------------------------------------

    async def _hello(self, device: int, body: dict[str, Any]) -> dict[str, Any]:
        self.hellos.append(body)
        return {"device_id": device, "server_time": _now(), "settings": self.settings}

    async def _pull(self, device: int, body: dict[str, Any]) -> Any:
        mx, wait = body.get("max", 15), body.get("wait", 0)
        if not isinstance(mx, int) or not 1 <= mx <= 100:
            return _err(400, "bad_request", "max must be 1..100")
        if not isinstance(wait, int | float) or not 0 <= wait <= 60:
            return _err(400, "bad_request", "wait must be 0..60")
        wait = min(wait, self.settings["long_poll_seconds"])
        self.pulls.append(body)
        holding = body.get("holding")
        if holding is not None and self.old_server:
            return _err(400, "invalid_input", "unknown key holding")
        sims = body.get("sims")
        if sims is not None and (self.refuse_sims or self.old_server):
            return _err(400, "invalid_input", "unknown key sims")
        limits = _sim_limits(sims)
        if isinstance(limits, web.Response):
            return limits
        if limits is not None:
            for slot, (ready, _, _, reason) in limits.items():
                if ready:
                    self.sim_reasons.pop((device, slot), None)
                else:
                    self.sim_reasons[(device, slot)] = reason
        if isinstance(holding, list):
            # agent-protocol.md: the device's uncommitted leases it does not hold go back now.
            for lease_id, lease in list(self.leases.items()):
                if lease.device == device and lease_id not in holding:
                    lease.expires = 0.0  # its uncommitted ids only: committed ones stay
            self._expire()
        # One pull per device: a newer one ends this one (409) while it is parked.
        gen = self._pull_gen[device] = self._pull_gen.get(device, 0) + 1
        async with self._changed:
            self._changed.notify_all()
        deadline = time.monotonic() + wait
        while True:
            if self._pull_gen.get(device) != gen:
                self.conflicts += 1
                return _err(409, "conflict", "a newer pull of this device took over")
            due = self._leasable(device, mx, limits)
            if due or self.closing or time.monotonic() >= deadline:
                break
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
        if not due:
            return {"lease_id": None, "lease_expires": None, "messages": []}
        lease_id = secrets.token_hex(8)
        self.leases[lease_id] = Lease(
            device, [m.id for m, _ in due], time.time() + self.lease_seconds
        )
        for m, slot in due:
            self._set(m, 2)
            m.lease = lease_id
            m.attempt += 1
            m.device, m.sim = device, slot
        return {
            "lease_id": lease_id,
            "lease_expires": _now(),
            "messages": [
                {
                    "id": m.id,
                    "to": m.to,
                    "body": m.body,
                    "sim": m.sim,
                    "urgent": m.urgent,
                    "timetosend": _now(),
                    "attempt": m.attempt,
                    **({"pool": m.pool} if limits is not None else {}),
                }
                for m, _ in due
            ],
        }

    def _leasable(
        self, device: int, mx: int, limits: dict[int, tuple[bool, int, int, str]] | None
    ) -> list[tuple[Msg, int]]:
        """What a pull may lease now, each with the slot it goes to: urgent first, then id."""
        queue = sorted(
            (m for m in self.messages.values() if m.status == 1),
            key=lambda m: (not m.urgent, m.id),
        )
        if limits is None:  # an agent from before pools: pinned messages of every slot
            return [(m, m.sim) for m in queue if m.device == device and m.pool is None][:mx]
        room = {s: r for s, (ok, r, _, _) in limits.items() if ok}
        pool_room = {s: p for s, (ok, _, p, _) in limits.items() if ok}
        out: list[tuple[Msg, int]] = []
        for m in queue:
            if len(out) >= mx:
                break
            if m.pool is None:
                if m.device == device and room.get(m.sim, 0) > 0:
                    room[m.sim] -= 1
                    out.append((m, m.sim))
                continue
            for d, slot in self.pools.get(m.pool, []):
                if d == device and room.get(slot, 0) > 0 and pool_room.get(slot, 0) > 0:
                    room[slot] -= 1
                    pool_room[slot] -= 1
                    out.append((m, slot))
                    break
        return out

    async def _commit(self, device: int, body: dict[str, Any]) -> Any:
        self.commits.append(body)
        lease = self.leases.get(body.get("lease_id", ""))
        if lease is None or lease.device != device:
            return _err(404, "not_found", "no such lease")
        events = body.get("events") if self.commit_reports else None
        if events is not None:  # a report rides along: refused whole, before anything is done
            bad = _bad_events(events)
            if bad:
                return _err(400, "bad_request", bad)
            self.commits_with_reports += 1
        self._expire()
        ids = body.get("ids", [])
        committed, rejected = [], []
        for i in ids:
            m = self.messages.get(i)
            if m is None or m.lease != body["lease_id"] or i not in lease.ids:
                rejected.append(i)
            elif m.status == 2:
                self._set(m, 3)
                committed.append(i)
            elif RANK[m.status] >= RANK[3]:
                committed.append(i)  # committed before: the same answer again
            else:
                rejected.append(i)
        lease.answer = {"committed": committed, "rejected": rejected}
        if events is not None:
            return {**lease.answer, **await self._report(device, {"events": events})}
        return lease.answer

    async def _report(self, device: int, body: dict[str, Any]) -> Any:
        events = body.get("events")
        bad = _bad_events(events)
        if bad:
            return _err(400, "bad_request", bad)
        assert isinstance(events, list)
        accepted = []
        for e in events:
            m = self.messages.get(e.get("sms_id"))
            if m is None or m.device != device:
                continue  # not this device's message: not applied, not accepted
            if e["event_id"] not in self.applied:
                status = _event_status(e)
                assert status is not None  # checked by _bad_events
                self.applied.add(e["event_id"])
                self.events.append(e)
                if RANK.get(status, 0) > RANK.get(m.status, 0):
                    self._set(m, status)
                    if e["type"] == "sent":
                        m.parts = e.get("parts", [])
                    m.reason = e.get("reason", "")
            accepted.append(e["event_id"])
        return {"accepted": accepted}

    async def _incoming(self, device: int, body: dict[str, Any]) -> Any:
        msgs = body.get("messages")
        if not isinstance(msgs, list):
            return _err(400, "bad_request", "messages must be a list")
        accepted = []
        for m in msgs:
            if not isinstance(m, dict) or not isinstance(m.get("key"), str):
                return _err(400, "bad_request", "message without key")
            if m["key"] not in self.incoming:
                self.incoming[m["key"]] = {**m, "sms_id": next(self._sms_ids), "device": device}
            accepted.append({"key": m["key"], "sms_id": self.incoming[m["key"]]["sms_id"]})
        return {"accepted": accepted}

    async def _status(self, device: int, body: dict[str, Any]) -> Any:
        self.statuses.append(body)
        return {"ok": True}

    async def _release(self, device: int, body: dict[str, Any]) -> Any:
        ids, reason = body.get("ids"), body.get("reason", "")
        if (
            not isinstance(ids, list)
            or len(ids) > 500
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
        ):
            return _err(400, "bad_request", "ids must be a list of at most 500 message ids")
        if not isinstance(reason, str) or len(reason) > 200:
            return _err(400, "bad_request", "reason must be text of at most 200 characters")
        self.releases.append(body)
        released, kept = [], []
        for i in ids:
            m = self.messages.get(i)
            if m is None or m.device != device:
                released.append(i)  # released before, or never this device's
            elif m.pool is not None and m.status in (2, 3):
                self._unlease(m)
                released.append(i)
            else:
                kept.append(i)  # pinned, or already under way here
        await self.changed()
        return {"released": released, "kept": kept}


def _sim_limits(sims: object) -> dict[int, tuple[bool, int, int, str]] | web.Response | None:
    """slot -> (ready, room, pool_room, reason) from a pull's `sims`; None without it."""
    if sims is None:
        return None
    if not isinstance(sims, list):
        return _err(400, "bad_request", "sims must be a list")
    out: dict[int, tuple[bool, int, int, str]] = {}
    for s in sims:
        if not isinstance(s, dict) or not isinstance(s.get("slot"), int):
            return _err(400, "bad_request", "each sim needs a slot")
        ready = s.get("ready") is True
        room, pool_room = s.get("room", 0), s.get("pool_room", 0)
        if ready and not (
            isinstance(room, int) and 0 <= room <= 100 and isinstance(pool_room, int)
            and 0 <= pool_room <= room
        ):  # fmt: skip
            return _err(400, "bad_request", "room must be 0..100 and pool_room 0..room")
        reason = s.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 200:
            return _err(400, "bad_request", "reason must be text of at most 200 characters")
        out[s["slot"]] = (ready, room if ready else 0, pool_room if ready else 0, reason)
    return out


def _err(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": {"code": code, "message": message}}),
        content_type="application/json",
    )


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def _event_status(e: dict[str, Any]) -> int | None:
    status = e.get("status") if e.get("type") == "failed" else TYPE_STATUS.get(e.get("type", ""))
    return status if isinstance(status, int) else None


def _bad_events(events: object) -> str:
    """Why a report's `events` is refused (400), or "" when it is not."""
    if not isinstance(events, list) or len(events) > 500:
        return "events must be a list of at most 500"
    for e in events:
        if not isinstance(e, dict) or not isinstance(e.get("event_id"), str):
            return "event without event_id"
        if _event_status(e) is None:
            return f"bad event type {e.get('type')!r}"
    return ""
