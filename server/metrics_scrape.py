"""One /metrics scrape in the Prometheus text format (docs/metrics.md): the metric families built
from the database snapshot, the agents' last reports and this process's request counts.

Imported at the first scrape, not at start-up: prometheus_client (with the wsgiref and http.server
modules it imports) costs a server that is never scraped memory for nothing (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
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
from simhive.server.metrics import READS, REQUESTS, SNAPSHOTS, UNMATCHED, US
from simhive.server.store.console_base import Histogram


async def exposition(app: web.Application) -> tuple[bytes, str]:
    """The body of one scrape and its Content-Type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(await families(app)))
    return generate_latest(registry), CONTENT_TYPE_LATEST


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
