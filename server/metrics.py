"""Prometheus metrics at /metrics (docs/metrics.md).

What a scrape reports is read from the database at scrape time (messages by status and SIM, queue
depth, latency histograms, the webhook outbox, SIM radio state as the agents last reported it), so
the figures are the database's own and survive restarts; only HTTP requests and webhook attempts
are counted in this process. Counting a request is one dict update in a middleware, not a
prometheus_client call: a labelled counter's lookup costs several times more, on every request
(docs/metrics.md has the measurement).

Access: with a metrics token set, a scrape needs `Authorization: Bearer <token>`; without one,
only clients on loopback are answered, so a server bound to a public address does not publish its
traffic figures to anyone who asks.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_urldispatcher import AbstractResource

from simhive.server.store.base import Store
from simhive.server.store.console_base import ConsoleStore, MetricsSnapshot
from simhive.server.store.console_engine import console_store

log = logging.getLogger("simhive.server")
US = 1_000_000
# Accept -> sent: an idle gateway sends within a second; a paced SIM queues for minutes.
LATENCY_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
# Sent -> delivery report: seconds on a quiet network, hours for a phone that is off.
REPORT_BOUNDS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0)
LOOPBACK = ("127.", "::1", "::ffff:127.")
UNMATCHED = "unmatched"


@dataclass(frozen=True)
class MetricsSettings:
    token: str | None = None  # None: answer loopback clients only
    # The message figures count every stored message (a scan of the table): scrapes closer
    # together than this share one count, so several Prometheus servers cost no more than one.
    refresh_seconds: float = 10.0


class SnapshotCache:
    """The database part of the latest scrape, reused for `refresh_seconds`; one count at a time."""

    def __init__(self, refresh_seconds: float) -> None:
        self.refresh_seconds = refresh_seconds
        self._lock = asyncio.Lock()
        self._taken = -math.inf
        self._snap: MetricsSnapshot | None = None

    async def get(self, store: ConsoleStore) -> MetricsSnapshot:
        async with self._lock:
            now = time.monotonic()
            if self._snap is None or now - self._taken >= self.refresh_seconds:
                self._snap = await store.metrics(LATENCY_BOUNDS, REPORT_BOUNDS)
                self._taken = time.monotonic()
            return self._snap


READS: web.AppKey[ConsoleStore] = web.AppKey("console_reads", ConsoleStore)
SNAPSHOTS: web.AppKey[SnapshotCache] = web.AppKey("metrics_snapshots", SnapshotCache)
# (method, matched resource or None, status) -> requests answered
RequestCounts = dict[tuple[str, AbstractResource | None, int], int]
REQUESTS: web.AppKey[RequestCounts] = web.AppKey("http_requests", dict)


def add_reads(app: web.Application, store: Store) -> bool:
    """The console/metrics read connection, opened after the store (which migrates) is; False
    when the store engine has no console queries (then neither is served)."""
    reads = console_store(store)
    if reads is None:
        log.warning("%s has no console queries: no web console, no /metrics", type(store).__name__)
        return False
    app[READS] = reads

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await reads.open()
        yield
        await reads.close()

    app.cleanup_ctx.append(lifecycle)
    return True


def request_counter(counts: RequestCounts) -> Middleware:
    """A middleware counting requests by (method, route template, status)."""

    @web.middleware
    async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects and the like pass through as exceptions
            _count(counts, request, exc.status)
            raise
        _count(counts, request, response.status)
        return response

    return count_requests


def _count(counts: RequestCounts, request: web.Request, status: int) -> None:
    # Keyed by the resource object; its route template is looked up at scrape time only (reading
    # `canonical` per request cost as much as the rest of the count).
    key = (request.method, request.match_info.route.resource, status)
    counts[key] = counts.get(key, 0) + 1


def allowed(request: web.Request, settings: MetricsSettings) -> bool:
    if settings.token is not None:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {settings.token}"
        return hmac.compare_digest(given.encode(), expected.encode())
    remote = request.remote or ""
    return remote.startswith(LOOPBACK)


def add_routes(app: web.Application, settings: MetricsSettings) -> None:
    app[SNAPSHOTS] = SnapshotCache(settings.refresh_seconds)

    async def scrape(request: web.Request) -> web.Response:
        if not allowed(request, settings):
            why = "a metrics token" if settings.token is not None else "a loopback client"
            return web.Response(status=403, text=f"/metrics needs {why}\n")
        # prometheus_client and the families are imported at the first scrape (metrics_scrape.py)
        from simhive.server.metrics_scrape import exposition

        body, content_type = await exposition(request.app)
        return web.Response(body=body, headers={"Content-Type": content_type})

    app.router.add_get("/metrics", scrape)
