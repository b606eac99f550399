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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_urldispatcher import AbstractResource
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from simhive.server.core.dates import now_us
from simhive.server.core.status import Status
from simhive.server.store.base import Store
from simhive.server.store.console_base import ConsoleStore, Histogram, MetricsSnapshot
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


class _Families(Collector):
    """Yields the families built for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def _status_name(code: int) -> str:
    try:
        return Status(code).name.lower()
    except ValueError:
        return str(code)


def _label(value: int | None) -> str:
    return "" if value is None else str(value)


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    buckets = [(repr(float(b)), float(n)) for b, n in h.buckets]
    buckets.append(("+Inf", float(h.count)))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.total)


async def families(app: web.Application) -> list[Metric]:
    """Every metric family of one scrape."""
    from simhive.server.api.agent import AGENT
    from simhive.server.background import BACKGROUND

    store = app[READS]
    snap = await app[SNAPSHOTS].get(store)
    main = app[AGENT].store
    devices = await main.list_devices()
    sims = await main.sims_of([d.id for d in devices])
    ready = await store.sim_readiness_of([d.id for d in devices])
    out: list[Metric] = []

    messages = GaugeMetricFamily(
        "simhive_messages",
        "Messages now in each status, per SIM (device and sim empty: a pool message not yet"
        " bound to a SIM).",
        labels=["status", "direction", "device", "sim"],
    )
    for (status, direction, device_id, slot), n in sorted(
        snap.messages.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0, kv[0][3] or 0)
    ):
        messages.add_metric([_status_name(status), direction, _label(device_id), _label(slot)], n)
    out.append(messages)

    depth = GaugeMetricFamily(
        "simhive_queue_depth",
        "Messages waiting for or held by each SIM (new, taken or queued; pinned or bound).",
        labels=["device", "sim"],
    )
    for (device_id, slot), n in sorted(snap.queue_depth.items()):
        depth.add_metric([str(device_id), str(slot)], n)
    out.append(depth)

    pools = GaugeMetricFamily(
        "simhive_pool_waiting", "Pool messages waiting for a SIM.", labels=["account", "pool"]
    )
    for key, n in sorted(snap.pool_waiting.items()):
        account, _, name = key.partition("/")
        pools.add_metric([account, name], n)
    out.append(pools)

    out.append(
        _histogram(
            "simhive_send_latency_seconds",
            "From when a message was due (accepted, or its scheduled time) to sent by the modem.",
            snap.send_latency,
        )
    )
    out.append(
        _histogram(
            "simhive_delivery_report_delay_seconds",
            "From sent to the delivery report (delivered or not delivered).",
            snap.report_delay,
        )
    )

    agents = app[AGENT]
    now = now_us()
    window = agents.settings.agent_offline_seconds * US
    online = [d for d in devices if d.lastseen is not None and now - d.lastseen <= window]
    out.append(
        GaugeMetricFamily(
            "simhive_agents_connected",
            "Devices whose agent was seen within the offline window (--agent-offline-seconds).",
            value=len(online),
        )
    )
    seen = GaugeMetricFamily(
        "simhive_device_last_seen_timestamp_seconds",
        "When each device's agent was last seen (Unix time).",
        labels=["device"],
    )
    for d in devices:
        if d.lastseen is not None:
            seen.add_metric([str(d.id)], d.lastseen / US)
    out.append(seen)

    signal = GaugeMetricFamily(
        "simhive_sim_signal_dbm", "Signal strength as the agent last reported it.",
        labels=["device", "sim"],
    )  # fmt: skip
    registered = GaugeMetricFamily(
        "simhive_sim_registered", "1 if the SIM is registered on a network.",
        labels=["device", "sim"],
    )  # fmt: skip
    roaming = GaugeMetricFamily(
        "simhive_sim_roaming", "1 if the SIM is registered roaming.", labels=["device", "sim"]
    )
    ready_gauge = GaugeMetricFamily(
        "simhive_sim_ready", "1 if the SIM was ready for work in its device's latest pull.",
        labels=["device", "sim"],
    )  # fmt: skip
    info = GaugeMetricFamily(
        "simhive_sim_info", "The SIM's operator (value always 1).",
        labels=["device", "sim", "operator"],
    )  # fmt: skip
    for device_id, device_sims in sorted(sims.items()):
        for sim in device_sims:
            labels = [str(device_id), str(sim.slot)]
            if sim.signal_dbm is not None:
                signal.add_metric(labels, sim.signal_dbm)
            registered.add_metric(labels, int(sim.registered))
            roaming.add_metric(labels, int(sim.roaming))
            info.add_metric([*labels, sim.operator], 1)
            readiness = ready.get((device_id, sim.slot))
            if readiness is not None:
                ready_gauge.add_metric(labels, int(readiness[0]))
    out += [signal, registered, roaming, ready_gauge, info]

    outbox = GaugeMetricFamily(
        "simhive_webhook_outbox",
        "Webhook outbox rows per state; 'pending' is the backlog.",
        labels=["state"],
    )
    for state in ("pending", "delivered", "dead"):
        outbox.add_metric([state], snap.webhooks.get(state, 0))
    out.append(outbox)
    sender = app[BACKGROUND].sender
    failures = CounterMetricFamily(
        "simhive_webhook_failed_attempts",
        "Webhook POSTs that failed (error or non-2xx answer) since the server started.",
        value=sender.failed_attempts if sender is not None else 0,
    )
    delivered = CounterMetricFamily(
        "simhive_webhook_delivered",
        "Webhook POSTs answered 2xx since the server started.",
        value=sender.delivered if sender is not None else 0,
    )
    out += [failures, delivered]

    http = CounterMetricFamily(
        "simhive_http_requests",
        "HTTP requests answered, by method, route template and status.",
        labels=["method", "route", "status"],
    )
    by_route: dict[tuple[str, str, int], int] = {}
    for (method, resource, status), n in list(app[REQUESTS].items()):
        route_key = (method, resource.canonical if resource is not None else UNMATCHED, status)
        by_route[route_key] = by_route.get(route_key, 0) + n
    for (method, route, status), n in sorted(by_route.items()):
        http.add_metric([method, route, str(status)], n)
    out.append(http)
    return out


def add_routes(app: web.Application, settings: MetricsSettings) -> None:
    app[SNAPSHOTS] = SnapshotCache(settings.refresh_seconds)

    async def scrape(request: web.Request) -> web.Response:
        if not allowed(request, settings):
            why = "a metrics token" if settings.token is not None else "a loopback client"
            return web.Response(status=403, text=f"/metrics needs {why}\n")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(await families(request.app)))
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/metrics", scrape)
