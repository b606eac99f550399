"""Serving the declared routes (routes.py): authentication, request checking against the
declarations, Idempotency-Key, and one error shape for everything, 404 and 405 included:
`{"error": {"code", "message", "details"}}` with the HTTP status of the code's table entry.

No request gets a 500 for what it sent: every check raises a GatewayError with its code; only a
fault of the server itself (logged with its traceback) answers `internal_error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from simhive.server.api.compat import GATEWAY
from simhive.server.api.params import load_json
from simhive.server.api.v1 import campaign_job, webhook_job
from simhive.server.api.v1.declare import Ctx, Route
from simhive.server.api.v1.routes import ROUTES
from simhive.server.core import idempotency, limits
from simhive.server.core.codes import status_of
from simhive.server.core.errors import GatewayError, InvalidInput, LimitReached
from simhive.server.core.expiry import ExpirySweeper
from simhive.server.core.native import Native
from simhive.server.store.base import StoreError

NATIVE: web.AppKey[Native] = web.AppKey("native", Native)
EXPIRY: web.AppKey[ExpirySweeper] = web.AppKey("expiry", ExpirySweeper)
PREFIX = "/api/v1"
log = logging.getLogger("simhive.server")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_JSON = "application/json; charset=utf-8"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = data if type(data) is bytes else _ENCODER.encode(data).encode("utf-8")
    return web.Response(
        body=body, status=status, headers={"Content-Type": _JSON, **(headers or {})}
    )


def error_response(
    code: str, message: str, details: dict[str, Any] | None = None, status: int | None = None
) -> web.Response:
    status = status or status_of(code)
    headers = {"WWW-Authenticate": 'Bearer realm="simhive"'} if status == 401 else {}
    return _json({"error": {"code": code, "message": message, "details": details or {}}},
                 status, headers)  # fmt: skip


def _gateway_error(exc: GatewayError) -> web.Response:
    response = error_response(exc.code, exc.message, exc.details)
    if isinstance(exc, LimitReached) and exc.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    return response


def _bearer(request: web.Request, route: Route) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if route.key_in_query:
        return request.rel_url.query.get("api_key")
    return None


async def _read_body(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except (RequestPayloadError, HttpProcessingError, ConnectionError):
        request.content.feed_eof()
        raise InvalidInput("Malformed request body") from None
    if not raw.strip():
        raise InvalidInput("A JSON object body is required", details={"field": "body"})
    return load_json(raw, "The body is not valid JSON")


def _arguments(request: web.Request, route: Route, body: Any) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, schema in route.params.items():
        args[name] = schema.from_text(request.match_info.get(name, ""), name)
    query = request.rel_url.query
    known = route.query.fields if route.query is not None else {}
    for name in query:
        if name not in known:
            raise InvalidInput(f"Unknown query parameter {name[:40]!r}",
                               details={"field": name[:40]})  # fmt: skip
    if route.query is not None:
        for name, schema in route.query.fields.items():
            if name in query:
                args[name] = schema.from_text(query[name], name)
            elif name in route.query.required:
                raise InvalidInput(f"{name}: is required", details={"field": name})
    if route.body is not None:
        args.update(route.body.check(body, ""))
    return args


async def _answer(request: web.Request, route: Route) -> web.Response:
    native = request.app[NATIVE]
    caller = await native.keys.authenticate(_bearer(request, route))
    body = await _read_body(request) if route.body is not None else None
    args = _arguments(request, route, body)
    ctx = Ctx(native, caller, request)
    key = request.headers.get("Idempotency-Key") if route.idempotent else None
    if key is None:
        return _json(await route.handler(ctx, args), route.status)
    digest = idempotency.fingerprint("v1", route.operation_id, args)

    async def work() -> bytes:
        return _ENCODER.encode(await route.handler(ctx, args)).encode("utf-8")

    gateway = request.app[GATEWAY]
    answer = await gateway.once.run(caller.account.id, idempotency.check_key(key), digest, work)
    return _json(answer, route.status)


def _handler(route: Route) -> Any:
    async def serve(request: web.Request) -> web.Response:
        try:
            return await _answer(request, route)
        except GatewayError as exc:
            return _gateway_error(exc)
        except web.HTTPRequestEntityTooLarge:
            return error_response(
                "body_too_large",
                f"Request body too large (at most {limits.MAX_REQUEST_BYTES} bytes)",
            )
        except StoreError as exc:
            log.error("storage failure on %s %s: %s", request.method, request.path, exc)
            return error_response("storage_unavailable", "Storage unavailable, try again")
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.path)
            return error_response("internal_error", "Internal server error")

    return serve


def _pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", PREFIX + path) + "/?$")


_PATTERNS = [(_pattern(r.path), r.method) for r in ROUTES]


async def _fallback(request: web.Request) -> web.Response:
    allowed = sorted({m for p, m in _PATTERNS if p.match(request.path)})
    if request.path in (PREFIX + "/openapi.json", PREFIX + "/docs"):
        allowed = ["GET"]
    if allowed:
        response = error_response(
            "method_not_allowed",
            f"{request.method[:10]} is not served here; use {', '.join(allowed)}",
            {"allowed": allowed},
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return error_response("not_found", "No such route under /api/v1 (see /api/v1/openapi.json)")


class _Reference:
    """/api/v1/openapi.json and /api/v1/docs, written from ROUTES at their first request: the
    document and the page (with jinja2 and the reference module) cost a server about 3 MiB it
    need not hold until someone asks (docs/benchmarks.md)."""

    def __init__(self) -> None:
        self._doc: dict[str, Any] | None = None
        self._json: bytes | None = None
        self._page: bytes | None = None

    def _document(self) -> dict[str, Any]:
        if self._doc is None:  # one document for both: the page renders the one served
            from simhive.server.api.v1.openapi import document

            self._doc = document(ROUTES)
        return self._doc

    def json(self) -> bytes:
        if self._json is None:
            self._json = _ENCODER.encode(self._document()).encode("utf-8")
        return self._json

    def page(self) -> bytes:
        if self._page is None:
            from simhive.server.api.v1 import reference

            self._page = reference.render(self._document()).encode("utf-8")
        return self._page


def add_routes(app: web.Application) -> None:
    app[NATIVE] = Native(app[GATEWAY])
    written = _Reference()

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(body=written.json(), headers={"Content-Type": _JSON})

    async def docs(request: web.Request) -> web.Response:
        # The page loads nothing: the policy keeps it so even if a description ever held markup.
        return web.Response(body=written.page(), headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        })  # fmt: skip

    app.router.add_get(PREFIX + "/openapi.json", openapi, allow_head=False)
    app.router.add_get(PREFIX + "/docs", docs, allow_head=False)
    for route in ROUTES:
        app.router.add_route(route.method, route.full_path, _handler(route))
    app.router.add_route("*", PREFIX + "/{tail:.*}", _fallback)
    app.router.add_route("*", PREFIX, _fallback)
    app[EXPIRY] = ExpirySweeper(app[GATEWAY].store)

    async def sweeping(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[EXPIRY].run(), name="simhive-expiry")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(sweeping)
    campaign_job.attach(app, app[NATIVE])
    webhook_job.attach(app, app[NATIVE])
