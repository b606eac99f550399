"""Error rendering and secret-free access logs for the HTTP API.

No request ever gets a stack trace: GatewayError becomes the API's error shape with HTTP 200
(docs/compat-api.md), an oversized body HTTP 413 with the same shape, and anything unexpected
is logged (without query string: tokens travel there) and answered 500 with the shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from typing import TextIO
from urllib.parse import unquote_plus

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

from simhive.server.api import agent
from simhive.server.api.compat import error_response
from simhive.server.api.params import MalformedBody
from simhive.server.core.errors import GatewayError
from simhive.server.core.limits import MAX_REQUEST_BYTES
from simhive.server.logs import scrub
from simhive.server.store.base import StoreError

log = logging.getLogger("simhive.server")

# How long an unread request body may take to arrive before the connection is closed instead.
DISCARD_SECONDS = 5.0
AGENT_PREFIX = "/agent/"
SECRET_KEYS = frozenset({"token", "pass", "password", "datajson"})


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await _answer(request, handler)
    if request.body_exists and not request.content.is_eof():
        await _discard_body(request, response)
    return response


async def _discard_body(request: web.Request, response: web.StreamResponse) -> None:
    """Read what a handler left unread (an unknown method or route answered before the body).

    aiohttp would drain it after the answer anyway, and log a body it cannot decode (gzip garbage)
    as an unhandled exception with a traceback; here it is the client's error, handled quietly,
    and the connection closes because what follows a broken body is no request.
    """
    stream = request.content
    seen = 0
    try:
        async with asyncio.timeout(DISCARD_SECONDS):
            while seen <= MAX_REQUEST_BYTES and (chunk := await stream.readany()):
                seen += len(chunk)
    except (RequestPayloadError, HttpProcessingError, ConnectionError, TimeoutError):
        stream.feed_eof()
        response.force_close()


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except MalformedBody as exc:
        response = error_response(exc.message)
        response.force_close()
        return response
    except GatewayError as exc:
        return error_response(exc.message)
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            f"Request body too large (at most {MAX_REQUEST_BYTES} bytes)", status=413
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if request.path.startswith(AGENT_PREFIX):
            # The agent protocol has its own error shape (agent-protocol.md): an unknown route
            # or a GET where POST is expected is a 4xx the agent must not retry unchanged.
            return agent.http_error(exc)
        return error_response(exc.reason, status=exc.status)
    except StoreError as exc:
        log.error("storage failure on %s %s: %s", request.method, request.path, exc)
        return error_response("Storage unavailable, try again", status=503)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response("Internal server error", status=500)


def mask_query(raw_query: str) -> str:
    """The raw (still percent-encoded) query string with the values of secret keys replaced by
    ***. Everything else is logged as the client sent it: the HTTP parser admits no spaces or
    control characters there, so nothing can break the log line, and a query without secrets
    costs one split instead of a decode and re-encode (about 12 us per GET request)."""
    if not raw_query:
        return ""
    parts = raw_query.split("&")
    for index, part in enumerate(parts):
        key = part.partition("=")[0]
        name = unquote_plus(key, errors="replace") if "%" in key or "+" in key else key
        if name.lower() in SECRET_KEYS:
            parts[index] = key + "=***"
    return "&".join(parts)


class AccessSink:
    """Collects access lines and writes them once per event-loop pass.

    Going through `logging` per request cost about a fifth of a cheap request's CPU; here a line is
    one f-string, and under load one write() carries many lines. Lines appear in the same loop pass
    they were made in, so nothing waits for a buffer to fill.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lines: list[str] = []
        self._scheduled = False
        self._second = -1
        self._stamp = ""

    def stamp(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int(now % 1 * 1000):03d}"

    def add(self, line: str) -> None:
        self._lines.append(line)
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (tests calling log() directly)
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        stream = self.stream if self.stream is not None else sys.stderr
        text = "".join(self._lines)
        self._lines.clear()
        with contextlib.suppress(OSError, ValueError):
            stream.write(text)
            stream.flush()


SINK = AccessSink()


class MaskingAccessLogger(AbstractAccessLogger):
    """Access log lines with token, pass and datajson masked (docs/compat-api.md)."""

    sink = SINK

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        query = mask_query(request.rel_url.raw_query_string)
        path = request.path
        if len(path) > 32 or "=" in path:  # no route is: a secret pasted into the path
            path = scrub(path)
        target = path + ("?" + query if query else "")
        version = request.version
        self.sink.add(
            f"{self.sink.stamp()} INFO simhive.access: {request.remote}"
            f' "{request.method} {target} HTTP/{version.major}.{version.minor}"'
            f" {response.status} {response.body_length} {time * 1000:.1f}ms\n"
        )

    @property
    def enabled(self) -> bool:
        return True
