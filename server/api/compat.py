"""The SMSGateway24-compatible API: `/getdata/<method>` (docs/compat-api.md).

Each handler reads merged parameters, calls the core and renders the vendor's exact shapes: ids as
JSON integers, lists as objects keyed by id strings, dates as PHP DateTime objects. Every API-level
error is HTTP 200 `{"error":1,"message":...}` (the middleware renders GatewayError).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiohttp import web

from simhive._version import VERSION
from simhive.server.api import fields
from simhive.server.api.params import Params, load_json, read_params, scalar_text, short
from simhive.server.core import idempotency, limits, numbers
from simhive.server.core.dates import OutputZone, human, php_datetime, resolve_zone
from simhive.server.core.errors import AuthError, GatewayError, InvalidInput
from simhive.server.core.gateway import Gateway, Outgoing
from simhive.server.core.models import Account, Device, Message, MessageFilter, Sim
from simhive.server.core.status import label

GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
# One encoder for every answer: json.dumps with options builds a new JSONEncoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
SAVED = "Sms has been saved successfully"

# A handler answers a dict to encode, or the JSON bytes themselves (fixed shapes, see saved_json).
Answer = dict[str, Any] | bytes
Handler = Callable[[Gateway, Params], Awaitable[Answer]]

IDEMPOTENCY_HEADER = "Idempotency-Key"
# The request's (key, fingerprint) when it came with an Idempotency-Key, for the storing routes
# (ONCE_ROUTES). A context variable, because aiohttp runs each request in its own task: set in
# `handle`, read by `_once` in the same request only, and no handler signature has to carry it.
_ONCE: ContextVar[tuple[str, str] | None] = ContextVar("simhive_once", default=None)
# Credentials are not part of what a request means: a retry with a fresh token is the same one.
_CREDENTIALS = frozenset({"token", "email", "pass"})


async def _once(gw: Gateway, account: Account, work: Callable[[], Awaitable[Answer]]) -> Answer:
    """`work`, run at most once per Idempotency-Key of the account (server/core/idempotency.py);
    without the header, simply `work`."""
    request = _ONCE.get()
    if request is None:
        return await work()

    async def encoded() -> bytes:
        return _encode(await work())

    return await gw.once.run(account.id, request[0], request[1], encoded)


def ok(message: str, **extra: Any) -> dict[str, Any]:
    return {"error": 0, "message": message, **extra}


async def _account(gw: Gateway, p: Params) -> Account:
    return await gw.authenticate(p.text("token"))


def _zone(p: Params, account: Account) -> OutputZone:
    requested = p.text("timezone")
    return resolve_zone(requested if requested is not None else account.timezone)


def _outgoing(source: Params | dict[str, Any]) -> Outgoing:
    values = source.values if isinstance(source, Params) else source
    get = values.get  # what Params.raw does, without the extra call per field
    sendto = scalar_text(get("sendto"), "sendto")
    if sendto is None or not sendto.strip():
        raise InvalidInput("Parameter sendto is required")
    body = scalar_text(get("body"), "body")
    if body is None:
        raise InvalidInput("Parameter body is required")
    pool = scalar_text(get("pool"), "pool")
    return Outgoing(
        sendto=sendto,
        body=body,
        device_id=fields.to_int(get("device_id"), "device_id"),
        sim=fields.to_send_sim(get("sim")),
        pool=pool.strip() if pool is not None and pool.strip() else None,
        timetosend=fields.to_time(get("timetosend"), "timetosend"),
        customerid=fields.customer_id(values),
        urgent=fields.to_bool(get("urgent"), "urgent"),
    )


def _saved(ids: list[int]) -> dict[str, Any]:
    out = {"error": 0, "sms_id": ids[0], "message": SAVED}
    if len(ids) > 1:
        out["sms_ids"] = ids
    return out


_SAVED_ONE = ('{"error":0,"sms_id":%d,"message":' + json.dumps(SAVED) + "}").encode()


def saved_json(ids: list[int]) -> bytes:
    """The encoded `_saved(ids)`: the answer to every single addsms, so the one-recipient case
    is a template (a third of a microsecond against the encoder's three); tested equal."""
    if len(ids) == 1 and type(ids[0]) is int:
        return _SAVED_ONE % ids[0]
    return _ENCODER.encode(_saved(ids)).encode("utf-8")


# -- routes ----------------------------------------------------------------------------------


async def gettoken(gw: Gateway, p: Params) -> dict[str, Any]:
    email = p.text("email")
    password = p.text("pass")
    if email is None or password is None:
        raise AuthError("Login or password incorrect")
    account = await gw.login(email, password, p.client)
    return ok("OK", token=await gw.issue_token(account))


async def addsms(gw: Gateway, p: Params) -> Answer:
    account = await _account(gw, p)
    if _ONCE.get() is None:  # the hot path, as it was
        return saved_json(await gw.send(account, _outgoing(p)))
    return await _once(gw, account, lambda: _send(gw, account, p))


async def _send(gw: Gateway, account: Account, p: Params) -> bytes:
    return saved_json(await gw.send(account, _outgoing(p)))


async def smstosend(gw: Gateway, p: Params) -> Answer:
    # A valid token authenticates; otherwise email + pass do (one real client sends all three).
    try:
        account = await _account(gw, p)
    except AuthError:
        email, password = p.text("email"), p.text("pass")
        if email is None or password is None:
            raise
        account = await gw.login(email, password, p.client)
    return await _once(gw, account, lambda: _send(gw, account, p))


async def addalotofsms(gw: Gateway, p: Params) -> Answer:
    try:
        data = _datajson(p)
    except InvalidInput:
        await gw.authenticate(p.text("token"))  # a bad token is the first thing to report
        raise
    token = scalar_text(data.get("token"), "token") or p.text("token")
    account = await gw.authenticate(token)
    return await _once(gw, account, lambda: _send_batch(gw, account, data))


async def _send_batch(gw: Gateway, account: Account, data: dict[str, Any]) -> dict[str, Any]:
    entries = data.get("smsdata")
    if not isinstance(entries, list):
        raise InvalidInput("Invalid datajson")
    requests: list[Outgoing] = []
    for index, entry in enumerate(entries[: limits.MAX_BATCH + 1]):
        if not isinstance(entry, dict):
            raise InvalidInput(f"smsdata[{index}]: entry is not an object")
        try:
            requests.append(_outgoing(entry))
        except GatewayError as exc:
            raise InvalidInput(f"smsdata[{index}]: {exc.message}") from None
    if len(entries) > limits.MAX_BATCH:
        raise InvalidInput(
            f"Too many messages in one batch: {len(entries)} (at most {limits.MAX_BATCH})"
        )
    ids = await gw.send_batch(account, requests)
    return ok(SAVED, sms_ids=ids)


def _datajson(p: Params) -> dict[str, Any]:
    """`datajson` as a form/multipart/query field holding a JSON string, a JSON value inside a
    JSON body, or the raw JSON body itself (`{"token":…,"smsdata":[…]}`)."""
    value = p.raw("datajson")
    if value is None or value == "":
        if p.json_body is not None and "smsdata" in p.json_body:
            return p.json_body
        if p.raw("smsdata") is None:
            raise InvalidInput("Parameter datajson is required")
        value = {"smsdata": p.raw("smsdata")}
    if isinstance(value, str):
        value = load_json(value, "Invalid datajson")
    if not isinstance(value, dict):
        raise InvalidInput("Invalid datajson")
    return value


async def getallsms(gw: Gateway, p: Params) -> dict[str, Any]:
    account = await _account(gw, p)
    zone = _zone(p, account)
    phone = p.text("phone")
    limit = fields.to_int(p.raw("limit"), "limit")
    offset = fields.to_int(p.raw("offset"), "offset")
    if limit is not None and not 1 <= limit <= limits.MAX_LIST_ROWS:
        raise InvalidInput(f"Invalid limit: {limit} (1 to {limits.MAX_LIST_ROWS})")
    if offset is not None and offset < 0:
        raise InvalidInput(f"Invalid offset: {offset}")
    status = fields.to_int(p.raw("status"), "status")
    sim = fields.to_int(p.raw("sim"), "sim")
    flt = MessageFilter(
        account_id=account.id,
        device_id=fields.to_int(p.raw("device_id"), "device_id"),
        sim=sim,
        status=status,
        customerid=fields.customer_id(p.values),
        sendto=numbers.normalise(phone) if phone is not None else None,
        created_from=fields.to_time(p.raw("begindate"), "begindate"),
        created_to=fields.to_time(p.raw("enddate"), "enddate", end_of_day=True),
        descending=fields.to_bool(p.raw("orderbydesc"), "orderbydesc"),
        limit=limit or limits.MAX_LIST_ROWS,
        offset=offset or 0,
    )
    count = await gw.count_messages(flt)
    if fields.to_bool(p.raw("onlycount"), "onlycount"):
        return {"error": 0, "count": count, "message": "Ok"}
    rows = await gw.list_messages(flt) if count else []
    smss = {str(m.id): render_message(m, zone) for m in rows}
    return {"error": 0, "smss": smss, "count": count, "message": "Ok"}


def render_message(m: Message, zone: OutputZone) -> dict[str, Any]:
    return {
        "id": m.id,
        "sendto": m.sendto,
        "body": m.body,
        "customerid": m.customerid,
        "status": m.status,
        "statustitle": label(m.status),
        "deviceid": m.device_id,
        "urgent": True if m.urgent else None,
        "created": php_datetime(m.created, zone),
        "senttime": php_datetime(m.senttime, zone),
        # Unscheduled: due when created, and the vendor's example shows that time, not null.
        "timetosend": php_datetime(m.timetosend if m.timetosend is not None else m.created, zone),
        "sim": m.sim,
        "paketid": m.paket_id,
        "pakettitle": m.paket_title,
        "paketbody": m.paket_body,
        # Only pool messages carry the key, so pinned messages look exactly as they always did.
        **({"pool": m.pool} if m.pool is not None else {}),
    }


async def savetag(gw: Gateway, p: Params) -> Answer:
    account = await _account(gw, p)

    async def work() -> dict[str, Any]:
        return ok("Ok", tag_id=await gw.create_tag(account, p.required("title")))

    return await _once(gw, account, work)


async def savecontact(gw: Gateway, p: Params) -> Answer:
    account = await _account(gw, p)
    return await _once(gw, account, lambda: _save_contact(gw, account, p))


async def _save_contact(gw: Gateway, account: Account, p: Params) -> dict[str, Any]:
    phone = p.required("phone")
    # `ctag_id` is how the vendor's current docs table spells it; the older pages say tag_id.
    raw_tag = p.raw("tag_id") if p.text("tag_id") is not None else p.raw("ctag_id")
    tag_id = fields.required_int(raw_tag, "tag_id")
    contact_id = await gw.create_contact(account, tag_id, phone, p.text("fullname"))
    return ok("Ok", contact_id=contact_id)


async def savepaket(gw: Gateway, p: Params) -> Answer:
    account = await _account(gw, p)
    return await _once(gw, account, lambda: _save_paket(gw, account, p))


async def _save_paket(gw: Gateway, account: Account, p: Params) -> dict[str, Any]:
    title = p.required("title")
    device_id = fields.required_int(p.raw("device_id"), "device_id")
    body = p.required("body")
    tags_text = p.required("tags")
    tag_ids: list[int] = []
    for item in tags_text.split(","):
        if item.strip():
            tag_ids.append(fields.required_int(item, "tags"))
    when = p.raw("timetosend") if p.text("timetosend") is not None else p.raw("time_to_send")
    result = await gw.create_paket(
        account,
        device_id=device_id,
        title=title,
        body=body,
        tag_ids=tag_ids,
        sim=fields.to_sim(p.raw("sim")),
        timetosend=fields.to_time(when, "timetosend"),
    )
    return ok("Ok", paket_id=result.paket_id)


async def getalldevices(gw: Gateway, p: Params) -> dict[str, Any]:
    account = await _account(gw, p)
    zone = _zone(p, account)
    devices = await gw.devices_with_sims(account)
    rendered = {str(d.id): render_device(d, sims, zone) for d, sims in devices}
    return {"error": 0, "message": "OK", "count": len(rendered), "device": rendered}


def render_device(d: Device, sims: list[Sim], zone: OutputZone) -> dict[str, Any]:
    # A device that never polled shows its creation time: PHP clients dereference lastseen.
    lastseen = d.lastseen if d.lastseen is not None else d.created
    return {
        "id": d.id,
        "title": d.title,
        "number": d.number or None,
        "imei": d.imei or "null",
        "created": php_datetime(d.created, zone),
        "createdhumanformat": human(d.created, zone),
        "lastseen": php_datetime(lastseen, zone),
        "lastseenhumanformat": human(lastseen, zone),
        "serialnumber": d.serialnumber or "unknown",
        "siminfo": [render_sim(s) for s in sims],
        "appversion": d.appversion or "",
        "isappversionactual": d.appversion == VERSION,
        "delaybetweeneachsms": d.delaybetweeneachsms,
        "delaybetweenrequest": d.delaybetweenrequest,
        "subscription": d.subscription,
    }


def render_sim(s: Sim) -> dict[str, str]:
    """Every siminfo value is a string, "Slot" and "Roaming" included (vendor shape)."""
    return {
        "Slot": str(s.slot),
        "IccId": s.iccid,
        "Number": s.number,
        "Roaming": "1" if s.roaming else "0",
        "CountryIso": s.country_iso.lower(),
        "CarrierName": s.carrier or s.operator,
    }


async def getsmsstatus(gw: Gateway, p: Params) -> dict[str, Any]:
    account = await _account(gw, p)
    sms_id = fields.required_int(p.raw("sms_id"), "sms_id")
    m = await gw.message(account, sms_id)
    answer: dict[str, Any] = {
        "error": 0,
        "sms_id": m.id,
        "status": m.status,
        "status_description": label(m.status),
        "message": "Ok",
    }
    # Only while a pinned message waits for a SIM or agent that is down: existing clients see
    # the answer they always saw otherwise.
    waiting = await gw.waiting_reason(m)
    if waiting is not None:
        answer["waiting"] = waiting
    return answer


async def getdevicestatus(gw: Gateway, p: Params) -> dict[str, Any]:
    account = await _account(gw, p)
    zone = _zone(p, account)
    # Fresh, not from the 2 s device cache: a cached copy could show a lastseen one poll older
    # than getalldevices does at the same moment.
    device_id = fields.required_int(p.raw("device_id"), "device_id")
    device = await gw.device_of(account, device_id, fresh=True)
    now = gw.clock()
    lastseen = device.lastseen if device.lastseen is not None else device.created
    return {
        "online": gw.is_online(device, now),
        "error": 0,
        "message": "OK",
        "device_id": device.id,
        "lastseen": php_datetime(lastseen, zone),
        "diffseconds": max(0, (now - lastseen) // 1_000_000),
        "title": device.title,
    }


# The routes that store something, where an Idempotency-Key applies. gettoken is not one: its
# answer is a new token, which must never be kept in clear.
ONCE_ROUTES = frozenset(
    {"addsms", "smstosend", "addalotofsms", "savetag", "savecontact", "savepaket"}
)

METHODS: dict[str, Handler] = {
    "gettoken": gettoken,
    "addsms": addsms,
    "smstosend": smstosend,
    "addalotofsms": addalotofsms,
    "getallsms": getallsms,
    "savetag": savetag,
    "savecontact": savecontact,
    "savepaket": savepaket,
    "getalldevices": getalldevices,
    "getsmsstatus": getsmsstatus,
    "getdevicestatus": getdevicestatus,
}


async def handle(request: web.Request) -> web.Response:
    method = request.match_info.get("method", "")
    handler = METHODS.get(method)
    if handler is None:
        return error_response("Unknown method")
    params = await read_params(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and method in ONCE_ROUTES:
        _ONCE.set((idempotency.check_key(key), _fingerprint(method, params)))
    return json_response(await handler(request.app[GATEWAY], params))


def _fingerprint(method: str, p: Params) -> str:
    def meaning(values: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (values or {}).items() if k not in _CREDENTIALS}

    return idempotency.fingerprint(method, meaning(p.values), meaning(p.json_body))


def _encode(data: Answer) -> bytes:
    return data if type(data) is bytes else _ENCODER.encode(data).encode("utf-8")


def json_response(data: Answer, status: int = 200) -> web.Response:
    """`data` encoded, or as it is when it is JSON bytes already."""
    return web.Response(
        body=_encode(data),
        status=status,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )


def error_response(message: str, status: int = 200) -> web.Response:
    return json_response({"error": 1, "message": message}, status)


async def fallback(request: web.Request) -> web.Response:
    """Everything else under /getdata: HTTP 200 with the error shape, like any API-level error,
    because Guzzle-based clients throw on a 4xx and hide the message (docs/compat-api.md)."""
    if request.method in ("GET", "POST"):
        return error_response("Unknown method")
    response = error_response(f"HTTP method {short(request.method)} not supported; use GET or POST")
    response.headers["Allow"] = "GET, POST"
    return response


def add_routes(app: web.Application) -> None:
    for path in ("/getdata/{method}", "/getdata/{method}/"):
        app.router.add_route("GET", path, handle)
        app.router.add_route("POST", path, handle)
    # Tried after the routes above: a wrong verb on a known route, `/getdata/`, deeper paths.
    for path in ("/getdata", "/getdata/{tail:.*}"):
        app.router.add_route("*", path, fallback)
