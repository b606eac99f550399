"""The agent protocol over HTTP: `POST /agent/v1/<route>` (docs/agent-protocol.md).

JSON in, JSON out, `Authorization: Bearer <device token>`. Errors are a non-2xx status with
`{"error": {"code": ..., "message": ...}}`; the agent retries 5xx and never retries a 4xx
unchanged, so anything wrong with the request itself must be a 4xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from simhive.server.api.params import scrub_surrogates
from simhive.server.core.agent import AgentService
from simhive.server.core.dates import iso, to_us
from simhive.server.core.errors import AuthError, Conflict, GatewayError, InvalidInput, NotFound
from simhive.server.core.models import (
    Balance,
    Device,
    DeviceFacts,
    IncomingMessage,
    Lease,
    ReportEvent,
    Sim,
)
from simhive.server.core.pools import SimOffer
from simhive.server.core.status import FAILURE_CODES
from simhive.server.store.base import StoreError

AGENT: web.AppKey[AgentService] = web.AppKey("agent", AgentService)
MAX_BODY = 1024 * 1024
MAX_ITEMS = 500
MAX_REASON_CHARS = 200
MAX_BALANCE_TEXT = 300  # a USSD answer is at most 182 characters; the agent cuts at 300
MAX_HOLDING = 100  # lease ids in a pull's `holding`; an agent holds one open lease at a time
EVENT_TYPES = ("sent", "delivered", "not_delivered", "failed", "unknown")
log = logging.getLogger("simhive.agent")

Body = dict[str, Any]
Route = Callable[[AgentService, Device, Body], Awaitable[Body]]


class Writer:
    """A route that writes its answer itself, because what it did depends on whether the
    answer reached the client (pull: a lease nobody received is handed back)."""

    def __init__(
        self,
        write: Callable[[web.Request, AgentService, Device, Body], Awaitable[web.StreamResponse]],
    ) -> None:
        self.write = write


class TooLarge(GatewayError):
    pass


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def http_error(exc: web.HTTPException) -> web.Response:
    """aiohttp's own 4xx for an /agent/v1 request (no such route, GET where POST is expected)
    in the protocol's error shape, not the compat API's."""
    if isinstance(exc, web.HTTPMethodNotAllowed):
        answer = error(405, "method_not_allowed", f"{exc.method} is not allowed here, use POST")
        answer.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return answer
    if exc.status == 404:
        return error(404, "not_found", "no such agent route")
    return error(exc.status, "bad_request", exc.reason)


# Called after every agent request (background.py wakes the webhook sender there: a report or
# an incoming SMS may just have written outbox rows). A hook of the agent routes rather than an
# on_response_prepare signal, which aiohttp would await on every response, compat ones included.
AFTER_REQUEST: web.AppKey[Callable[[], None]] = web.AppKey("agent_after_request")


def endpoint(fn: Route | Writer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Authenticate, parse, call, and map errors; a `Writer` writes its own answer. The app's
    AFTER_REQUEST hook runs after every call, failed or not."""
    writer = fn if isinstance(fn, Writer) else None

    async def handler(request: web.Request) -> web.StreamResponse:
        service = request.app[AGENT]
        try:
            device = await service.authenticate(_bearer(request))
            body = await _json_body(request)
            if writer is not None:
                return await writer.write(request, service, device, body)
            assert not isinstance(fn, Writer)
            return web.json_response(await fn(service, device, body))
        except AuthError as exc:
            return error(401, "unauthorized", exc.message)
        except (TooLarge, web.HTTPRequestEntityTooLarge):
            return error(413, "too_large", f"at most {MAX_BODY} bytes and {MAX_ITEMS} items")
        except InvalidInput as exc:
            return error(400, "bad_request", exc.message)
        except NotFound as exc:
            return error(404, "not_found", exc.message)
        except Conflict as exc:
            return error(409, "conflict", exc.message)
        except StoreError as exc:
            if not await service.still_valid(_bearer(request)):
                return error(401, "unauthorized", "unknown device token")
            log.error("storage failure on %s: %s", request.path, exc)
            return error(503, "unavailable", "storage unavailable, try again")
        except Exception:
            # The device may have been deleted by another process while this one still had
            # its token cached (limits.TOKEN_CACHE_SECONDS): the store then refuses rows that
            # refer to it. That is the agent's token no longer being valid, not a server fault.
            if not await service.still_valid(_bearer(request)):
                return error(401, "unauthorized", "unknown device token")
            log.exception("unexpected error on %s", request.path)
            return error(500, "internal", "internal server error")
        finally:
            after = request.app.get(AFTER_REQUEST)
            if after is not None:
                after()

    return handler


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _json_body(request: web.Request) -> Body:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise TooLarge("body too large")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise TooLarge("body too large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
        # A `\ud800` escape, or its bytes (json.loads decodes bytes with surrogatepass), is a
        # lone surrogate that SQLite cannot store as UTF-8: U+FFFD instead, as in the compat API.
        if not raw.isascii() or b"\\u" in raw:
            body = scrub_surrogates(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[... nesting
        raise InvalidInput("body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object")
    return body


# -- field readers: a wrong type is the client's bug, reported as 400 with the field's name ----


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _opt(obj: Body, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and kind is int:
        raise InvalidInput(f"{where}{key} must be an integer")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InvalidInput(f"{where}{key} must be {name}")
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        raise InvalidInput(f"{where}{key} is out of range")  # SQLite integers are 64-bit
    return value


def _req(obj: Body, key: str, kind: type | tuple[type, ...], where: str = "") -> Any:
    value = _opt(obj, key, kind, where)
    if value is None:
        raise InvalidInput(f"{where}{key} is required")
    return value


def _int_in(obj: Body, key: str, lo: int, hi: int, default: int, where: str = "") -> int:
    value = _opt(obj, key, int, where)
    if value is None:
        return default
    if not lo <= value <= hi:
        raise InvalidInput(f"{where}{key} must be between {lo} and {hi}")
    return int(value)


def _time(obj: Body, key: str, where: str) -> int | None:
    text = _opt(obj, key, str, where)
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{where}{key} is not an ISO 8601 time") from None
    return to_us(dt if dt.tzinfo else dt.replace(tzinfo=UTC))


def _items(body: Body, key: str) -> list[Body]:
    items = _opt(body, key, list, "")
    if items is None:
        return []
    if len(items) > MAX_ITEMS:
        raise TooLarge(f"more than {MAX_ITEMS} {key}")
    out: list[Body] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidInput(f"{key}[{i}] must be an object")
        out.append(item)
    return out


def _balance(sim: Body, where: str) -> Balance | None:
    """A `sims` entry's `balance` (docs/agent-protocol.md); null or absent: none."""
    raw = _opt(sim, "balance", dict, where)
    if raw is None:
        return None
    w = f"{where}balance."
    amount = _opt(raw, "amount", (int, float), w)
    if isinstance(amount, bool) or (amount is not None and not math.isfinite(amount)):
        raise InvalidInput(f"{w}amount must be a number")
    return Balance(
        text=_req(raw, "text", str, w)[:MAX_BALANCE_TEXT],
        amount=None if amount is None else float(amount),
        currency=(_opt(raw, "currency", str, w) or "")[:8] or None,
        low=bool(_opt(raw, "low", bool, w)),
        checked_at=_time(raw, "checked_at", w),
    )


def _sims(body: Body) -> list[Sim] | None:
    if body.get("sims") is None:
        return None
    out: list[Sim] = []
    for i, s in enumerate(_items(body, "sims")):
        w = f"sims[{i}]."
        out.append(
            Sim(
                device_id=0,
                slot=_int_in(s, "slot", 0, 15, i, w),
                present=bool(_opt(s, "present", bool, w) if "present" in s else True),
                active=bool(_opt(s, "active", bool, w) if "active" in s else True),
                iccid=_opt(s, "iccid", str, w) or "",
                imsi=_opt(s, "imsi", str, w) or "",
                number=_opt(s, "number", str, w) or "",
                operator=_opt(s, "operator", str, w) or "",
                operator_code=_opt(s, "operator_code", str, w) or "",
                carrier=_opt(s, "carrier", str, w) or "",
                country_iso=(_opt(s, "country_iso", str, w) or "")[:2],
                registered=bool(_opt(s, "registered", bool, w)),
                roaming=bool(_opt(s, "roaming", bool, w)),
                signal_dbm=_opt(s, "signal_dbm", int, w),
                balance=_balance(s, w),
            )
        )
    if len({s.slot for s in out}) != len(out):
        raise InvalidInput("sims: a slot is listed twice")
    return out


# -- routes ------------------------------------------------------------------------------------


async def hello(svc: AgentService, device: Device, body: Body) -> Body:
    info = _opt(body, "device", dict, "") or {}
    facts = DeviceFacts(
        manufacturer=_opt(info, "manufacturer", str, "device."),
        model=_opt(info, "model", str, "device."),
        firmware=_opt(info, "firmware", str, "device."),
        imei=_opt(info, "imei", str, "device."),
        serialnumber=_opt(info, "serialnumber", str, "device."),
        appversion=_opt(body, "agent_version", str, ""),
    )
    return await svc.hello(device, facts, _sims(body))


def _pull_args(svc: AgentService, body: Body) -> tuple[int, float]:
    max_messages = _int_in(body, "max", 1, 100, svc.settings.pull_max)
    wait = _opt(body, "wait", (int, float), "")
    if wait is not None and (isinstance(wait, bool) or not 0 <= wait <= 60):
        raise InvalidInput("wait must be between 0 and 60")
    return max_messages, float(wait or 0)


def _holding(body: Body) -> list[str] | None:
    held = _opt(body, "holding", list, "")
    if held is None:
        return None
    if len(held) > MAX_HOLDING or not all(isinstance(h, str) and 0 < len(h) <= 64 for h in held):
        raise InvalidInput(f"holding must be a list of at most {MAX_HOLDING} lease ids")
    return list(held)


def _offers(body: Body) -> list[SimOffer] | None:
    """A pull's `sims`: each SIM's readiness and room (docs/agent-protocol.md)."""
    if body.get("sims") is None:
        return None
    out: list[SimOffer] = []
    for i, s in enumerate(_items(body, "sims")):
        w = f"sims[{i}]."
        ready = _opt(s, "ready", bool, w)
        if ready is None:
            raise InvalidInput(f"{w}ready is required")
        room = _int_in(s, "room", 0, 100, 0, w)
        out.append(
            SimOffer(
                slot=_int_in(s, "slot", 0, 15, i, w),
                ready=ready,
                room=room,
                pool_room=min(room, _int_in(s, "pool_room", 0, 100, 0, w)),
                reason=(_opt(s, "reason", str, w) or "")[:MAX_REASON_CHARS],
            )
        )
    if len({o.slot for o in out}) != len(out):
        raise InvalidInput("sims: a slot is listed twice")
    return out


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def pull(
    request: web.Request, svc: AgentService, device: Device, body: Body
) -> web.StreamResponse:
    """Long poll, then write the answer here rather than after returning: a lease whose answer
    cannot be written (the client is gone) goes back to the queue at once instead of waiting
    lease_seconds for a commit that cannot come."""
    max_messages, wait = _pull_args(svc, body)
    lease = await svc.pull(
        device,
        max_messages,
        wait,
        gone=lambda: _gone(request),
        holding=_holding(body),
        sims=_offers(body),
    )
    response = web.json_response(_lease_body(lease))
    if lease is None:
        return response
    try:
        if _gone(request):
            raise ConnectionResetError("client gone before the answer was written")
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError as exc:
        svc.hand_back(device.id, lease.lease_id, f"answer not written: {exc}")
        return response  # aiohttp treats the dead connection as a client disconnect
    except BaseException:  # cancelled (the client went away) while writing
        svc.hand_back(device.id, lease.lease_id, "cancelled while writing the answer")
        raise
    return response


def _lease_body(lease: Lease | None) -> Body:
    if lease is None:
        return {"lease_id": None, "lease_expires": None, "messages": []}
    return {
        "lease_id": lease.lease_id,
        "lease_expires": iso(lease.expires),
        "messages": [
            {
                "id": m.id,
                "to": m.sendto,
                "body": m.body,
                "sim": m.sim,
                "urgent": m.urgent,
                "timetosend": iso(m.timetosend),
                "attempt": m.attempt,
                "pool": m.pool,
            }
            for m in lease.messages
        ],
    }


def _ids(body: Body) -> list[int]:
    ids = _req(body, "ids", list)
    if len(ids) > MAX_ITEMS:
        raise TooLarge("too many ids")
    if not all(
        isinstance(i, int) and not isinstance(i, bool) and _INT64_MIN <= i <= _INT64_MAX
        for i in ids
    ):
        raise InvalidInput("ids must be integers")
    return [int(i) for i in ids]


async def commit(svc: AgentService, device: Device, body: Body) -> Body:
    """A commit, and with optional `events` a report in the same request: an agent that claims
    pool messages one send at a time has report events ready at nearly every claim, and one
    request instead of two costs the server (and the agent) less. The events are read before
    anything is done, so a bad one refuses the request and commits nothing; the commit goes
    together with the report, so both share one group commit of the store (one wait for the
    disk, not two, before the claim's answer)."""
    lease_id = _req(body, "lease_id", str)
    ids = _ids(body)
    events = _events(svc, body) if body.get("events") is not None else None
    answer: Body
    if events:
        (committed, rejected), accepted = await asyncio.gather(
            svc.commit(device, lease_id, ids), svc.report(device, events)
        )
        answer = {"committed": committed, "rejected": rejected, "accepted": accepted}
    else:
        committed, rejected = await svc.commit(device, lease_id, ids)
        answer = {"committed": committed, "rejected": rejected}
        if events is not None:
            answer["accepted"] = []
    return answer


async def release(svc: AgentService, device: Device, body: Body) -> Body:
    ids = _ids(body)
    reason = (_opt(body, "reason", str, "") or "")[:MAX_REASON_CHARS]
    released, kept = await svc.release(device, ids, reason)
    return {"released": released, "kept": kept}


async def report(svc: AgentService, device: Device, body: Body) -> Body:
    return {"accepted": await svc.report(device, _events(svc, body))}


def _events(svc: AgentService, body: Body) -> list[ReportEvent]:
    """A report's `events` (also those that ride along with a commit)."""
    now = svc.clock()
    events: list[ReportEvent] = []
    for i, e in enumerate(_items(body, "events")):
        w = f"events[{i}]."
        kind = _req(e, "type", str, w)
        if kind not in EVENT_TYPES:
            raise InvalidInput(f"{w}type must be one of {', '.join(EVENT_TYPES)}")
        event_id = _req(e, "event_id", str, w)
        if not 0 < len(event_id) <= 200:
            raise InvalidInput(f"{w}event_id must have 1 to 200 characters")
        status = _opt(e, "status", int, w)
        if kind == "failed" and status not in FAILURE_CODES:
            raise InvalidInput(f"{w}status must be one of {sorted(int(c) for c in FAILURE_CODES)}")
        parts: list[tuple[int, int | None]] = []
        for j, p in enumerate(_opt(e, "parts", list, w) or []):
            if not isinstance(p, dict):
                raise InvalidInput(f"{w}parts[{j}] must be an object")
            # null: the modem confirmed the part without a readable TP-MR (line noise).
            reference = _opt(p, "reference", int, f"{w}parts[{j}].")
            if reference is not None and not 0 <= reference <= 255:
                raise InvalidInput(f"{w}parts[{j}].reference must be between 0 and 255, or null")
            parts.append((_int_in(p, "index", 0, 255, j, f"{w}parts[{j}]."), reference))
        at = _time(e, "at", w)
        events.append(
            ReportEvent(
                event_id=event_id,
                sms_id=_req(e, "sms_id", int, w),
                type=kind,
                at=at if at is not None else now,
                status=status,
                code=(_opt(e, "code", str, w) or None),
                reason=(_opt(e, "reason", str, w) or None),
                parts=tuple(parts),
            )
        )
    return events


async def incoming(svc: AgentService, device: Device, body: Body) -> Body:
    messages: list[IncomingMessage] = []
    for i, m in enumerate(_items(body, "messages")):
        w = f"messages[{i}]."
        key = _req(m, "key", str, w)
        if not 0 < len(key) <= 300:
            raise InvalidInput(f"{w}key must have 1 to 300 characters")
        messages.append(
            IncomingMessage(
                key=key,
                sim=_int_in(m, "sim", 0, 15, 0, w),
                sender=_req(m, "from", str, w),
                body=_opt(m, "body", str, w) or "",
                sent_at=_time(m, "sent_at", w),
                received_at=_time(m, "received_at", w),
                parts=_int_in(m, "parts", 1, 255, 1, w),
                incomplete=bool(_opt(m, "incomplete", bool, w)),
            )
        )
    stored = await svc.incoming(device, messages)
    return {"accepted": [{"key": key, "sms_id": sms_id} for key, sms_id in stored]}


async def status(svc: AgentService, device: Device, body: Body) -> Body:
    await svc.status(device, _sims(body), _items(body, "events"))
    return {"ok": True}


ROUTES: dict[str, Route | Writer] = {
    "hello": hello,
    "pull": Writer(pull),
    "commit": commit,
    "release": release,
    "report": report,
    "incoming": incoming,
    "status": status,
}


def add_routes(app: web.Application) -> None:
    for name, fn in ROUTES.items():
        app.router.add_post(f"/agent/v1/{name}", endpoint(fn))
