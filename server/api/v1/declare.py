"""How a route of /api/v1 is declared: once, with its scope, parameters, body and answer.

From these declarations `http.py` registers the aiohttp handlers (which check every request
against them) and `openapi.py` writes the OpenAPI 3.1 document; nothing else describes a route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from simhive.server.api.v1.schema import Obj, Schema
from simhive.server.core.keys import Caller
from simhive.server.core.native import Native


@dataclass
class Ctx:
    """What a handler gets besides its arguments."""

    native: Native
    caller: Caller
    request: web.Request


Handler = Callable[[Ctx, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # under /api/v1, with {name} parameters
    operation_id: str
    summary: str
    tag: str
    scope: str  # the scope the core checks for it (docs, contract tests)
    handler: Handler
    answer: Schema
    status: int = 200
    params: dict[str, Schema] = field(default_factory=dict)  # path parameters
    query: Obj | None = None
    body: Obj | None = None
    idempotent: bool = False  # honours Idempotency-Key
    owned: bool = False  # names a record of an account: other accounts get not_found
    description: str = ""
    # GET send: the key may come as ?api_key= (a documented risk) besides the header.
    key_in_query: bool = False
    # OpenAPI links from this route's answer to routes that take a value of it, e.g.
    # {"getMessage": {"id": "$response.body#/messages/0/id"}}: clients and stateful fuzzing
    # (schemathesis) follow them from a created record to what can be done with it.
    links: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def full_path(self) -> str:
        return "/api/v1" + self.path
