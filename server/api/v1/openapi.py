"""The OpenAPI 3.1 document of /api/v1, written from the route declarations (routes.py) at
start-up and served at GET /api/v1/openapi.json. Nothing here is kept by hand per route."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simhive._version import VERSION
from simhive.server.api.v1 import render
from simhive.server.api.v1.declare import Route
from simhive.server.core.codes import CODES

# Every route may answer these besides its success (a key may be refused on any route, a body
# may be too large, a pool or device it names may not exist, storage may be down); 409 only
# where something is written.
_COMMON = (400, 401, 403, 404, 413, 429, 503)
_DESCRIPTIONS = {
    400: "Bad input (invalid_input and the specific codes of the route).",
    401: "No usable API key (invalid_credential, device_token_refused).",
    403: "Scope denied, GET send disabled, or a quota exhausted.",
    404: "No such record in this account.",
    409: "Conflicts with stored state, or an Idempotency-Key reused.",
    413: "Request body too large.",
    429: "The key's rate limit; see Retry-After.",
    503: "Storage unavailable; retry.",
}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "description": route.description
        or f"Needs the `{route.scope}` scope (`admin` holds every scope).",
        "parameters": [],
        "security": [{"bearer": []}],
    }
    for name, schema in route.params.items():
        op["parameters"].append(
            {"name": name, "in": "path", "required": True, "schema": schema.openapi()}
        )
    if route.query is not None:
        for name, schema in route.query.fields.items():
            op["parameters"].append(
                {"name": name, "in": "query", "required": name in route.query.required,
                 "schema": schema.openapi()}
            )  # fmt: skip
    if route.idempotent:
        op["parameters"].append({
            "name": "Idempotency-Key", "in": "header", "required": False,
            "description": "A retry with the same key gets the first answer; nothing is stored"
                           " twice (24 hours, per account).",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255,
                       "pattern": "^[!-~]+$"},
        })  # fmt: skip
    if route.key_in_query:
        op["security"].append({"query_key": []})
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body.openapi()}},
        }
    statuses = sorted({*_COMMON, *((409,) if route.method != "GET" else ())})
    success: dict[str, Any] = {
        "description": "Success.",
        "content": {"application/json": {"schema": route.answer.openapi()}},
    }
    if route.links:
        success["links"] = {
            target: {"operationId": target, "parameters": parameters}
            for target, parameters in route.links.items()
        }
    op["responses"] = {
        str(route.status): success,
        **{str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses},
    }
    return op


def document(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.full_path, {})[route.method.lower()] = _operation(route)
    error_schema = render.ERROR.openapi()
    error_schema["properties"]["error"]["properties"]["code"]["enum"] = [c.code for c in CODES]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "simhive native API",
            "version": VERSION,
            "description": "JSON over HTTP under /api/v1 with `Authorization: Bearer <API key>`"
            ' (docs/api.md). Errors: `{"error": {"code", "message", "details"}}`.',
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "query_key": {"type": "apiKey", "in": "query", "name": "api_key"},
            },
            "schemas": {"Error": error_schema},
            "responses": {
                f"E{s}": {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for s, text in _DESCRIPTIONS.items()
            },
        },
    }
