"""Error rendering and secret-free access logs for the HTTP API.

No request ever gets a stack trace: GatewayError becomes the API's error shape with HTTP 200
(compat-api.md section 6), an oversized body HTTP 413 with the same shape, and anything unexpected
is logged (without query string: tokens travel there) and answered 500 with the shape.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from server.api.compat import error_response
from server.core.errors import GatewayError
from server.core.limits import MAX_REQUEST_BYTES
from server.store.base import StoreError

log = logging.getLogger("simhive.server")

SECRET_KEYS = frozenset({"token", "pass", "password", "datajson"})


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return error_response(exc.message)
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            f"Request body too large (at most {MAX_REQUEST_BYTES} bytes)", status=413
        )
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.reason, status=exc.status)
        raise
    except StoreError as exc:
        log.error("storage failure on %s %s: %s", request.method, request.path, exc)
        return error_response("Storage unavailable, try again", status=503)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response("Internal server error", status=500)


def mask_query(query_string: str) -> str:
    """The query string with the values of secret keys replaced by ***."""
    if not query_string:
        return ""
    pairs = parse_qsl(query_string, keep_blank_values=True, errors="replace")
    return urlencode(
        [(k, "***" if k.lower() in SECRET_KEYS else v) for k, v in pairs], safe="*+:,/"
    )


class MaskingAccessLogger(AbstractAccessLogger):
    """Access log lines with token, pass and datajson masked (compat-api.md 1.10)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        query = mask_query(request.query_string)
        target = request.path + ("?" + query if query else "")
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %s %.1fms',
            request.remote,
            request.method,
            target,
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
