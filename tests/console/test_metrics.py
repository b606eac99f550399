"""/metrics scraped from the real gateway after a run of sends, parsed with prometheus_client's
parser, and compared with the database; access rules in process."""

from __future__ import annotations

import sqlite3
import urllib.request
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from simhive.server.api.compat import GATEWAY
from simhive.server.app import create_app
from simhive.server.core.gateway import Outgoing
from simhive.server.metrics import MetricsSettings, SnapshotCache, allowed
from simhive.server.store.console_base import MetricsSnapshot
from simhive.server.store.console_engine import console_store
from tests.console.conftest import ConsoleStack
from tests.support.stack import wait_until
from tests.support.testdb import AppDb

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    request = urllib.request.Request(url + "/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def db_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return list(conn.execute(sql).fetchall())


def one(samples: Samples, name: str, **labels: str) -> float:
    found = [
        v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
    ]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


STATUS_NAMES = {
    1: "new",
    2: "taken",
    3: "queued",
    5: "incoming",
    6: "sent",
    7: "delivered",
    8: "not_delivered",
    9: "failed",
}


@pytest.mark.integration
def test_metrics_match_the_database_after_a_run_of_sends(stack: ConsoleStack) -> None:
    a, b = stack.devices
    ids = [stack.addsms(a, b.number(0), f"metrics {i}", sim=i % 2) for i in range(4)]
    ids += [stack.to_pool("all", a.number(1), f"pool {i}") for i in range(2)]
    for sms_id in ids:
        stack.wait_status(sms_id, {7})

    # Messages by status and SIM: exactly the database's GROUP BY. A scrape may reuse a count
    # up to refresh_seconds old (another test scraped this server just before): wait for one.
    def messages(samples: Samples) -> dict[tuple[str, str, str, str], float]:
        return {
            (lab["status"], lab["direction"], lab["device"], lab["sim"]): v
            for lab, v in samples["simhive_messages"]
        }

    expected = {
        (
            STATUS_NAMES.get(s, str(s)),
            d,
            "" if dev is None else str(dev),
            "" if dev is None else str(sim),
        ): n
        for s, d, dev, sim, n in db_rows(
            stack.db,
            "SELECT status, direction, device_id, sim, COUNT(*) FROM messages GROUP BY 1, 2, 3, 4",
        )
    }

    def fresh() -> Samples | None:
        samples = scrape(stack.url)
        return samples if messages(samples) == expected else None

    samples = wait_until(fresh, MetricsSettings().refresh_seconds * 3, "a fresh count")
    got = messages(samples)
    assert got[("delivered", "out", str(a.device_id), "0")] >= 2  # the run above is in there

    # Nothing waits any more: every SIM's queue is empty, as in the database.
    waiting = db_rows(stack.db, "SELECT COUNT(*) FROM messages WHERE status IN (1, 2, 3)")
    assert waiting == [(0,)]
    assert all(v == 0 for _, v in samples.get("simhive_queue_depth", []))

    # Histograms: one observation per sent message, per delivery report.
    ((sent, total_us),) = db_rows(
        stack.db,
        "SELECT COUNT(*), TOTAL(MAX(senttime - due, 0))"
        " FROM messages WHERE direction = 'out' AND senttime IS NOT NULL",
    )
    assert one(samples, "simhive_send_latency_seconds_count") == sent >= len(ids)
    assert one(samples, "simhive_send_latency_seconds_sum") == pytest.approx(total_us / 1e6)
    buckets = [v for _, v in samples["simhive_send_latency_seconds_bucket"]]
    assert buckets == sorted(buckets) and buckets[-1] == sent
    ((reports,),) = db_rows(
        stack.db,
        "SELECT COUNT(*) FROM messages WHERE status IN (7, 8)"
        " AND delivered_time IS NOT NULL AND senttime IS NOT NULL",
    )
    assert one(samples, "simhive_delivery_report_delay_seconds_count") == reports >= len(ids)
    for le in ("1.0", "5.0"):
        ((within,),) = db_rows(
            stack.db,
            "SELECT COUNT(*) FROM messages WHERE status IN (7, 8)"
            " AND delivered_time IS NOT NULL AND senttime IS NOT NULL"
            f" AND delivered_time - senttime <= {float(le) * 1e6}",
        )
        assert one(samples, "simhive_delivery_report_delay_seconds_bucket", le=le) == within

    # SIM radio state as the agents reported it.
    for device_id, slot, dbm, registered, roaming in db_rows(
        stack.db, "SELECT device_id, slot, signal_dbm, registered, roaming FROM sims"
    ):
        labels = {"device": str(device_id), "sim": str(slot)}
        assert one(samples, "simhive_sim_signal_dbm", **labels) == dbm
        assert one(samples, "simhive_sim_registered", **labels) == registered
        assert one(samples, "simhive_sim_roaming", **labels) == roaming
    for device_id, slot, ready in db_rows(stack.db, "SELECT device_id, slot, ready FROM sim_ready"):
        labels = {"device": str(device_id), "sim": str(slot)}
        if any(lab == labels for lab, _ in samples["simhive_sim_signal_dbm"]):
            assert one(samples, "simhive_sim_ready", **labels) == ready
    assert one(samples, "simhive_agents_connected") >= 2

    # HTTP requests by route: exactly the calls made between two scrapes.
    before = scrape(stack.url)
    for _ in range(3):
        stack.status(ids[0])
    after = scrape(stack.url)
    route = {"method": "POST", "route": "/getdata/{method}", "status": "200"}
    assert (
        one(after, "simhive_http_requests_total", **route)
        - one(before, "simhive_http_requests_total", **route)
        == 3
    )
    scrapes = {"method": "GET", "route": "/metrics", "status": "200"}
    assert (
        one(after, "simhive_http_requests_total", **scrapes)
        - one(before, "simhive_http_requests_total", **scrapes)
        == 1
    )


@pytest.mark.integration
def test_webhook_backlog_and_failures(stack: ConsoleStack) -> None:
    a, b = stack.devices
    # A status webhook to a port where nothing listens: every attempt fails.
    stack.set_device_settings(
        b, {"webhook_status": "http://127.0.0.1:9/hook", "webhook_secret": "s" * 32}
    )
    try:
        sms_id = stack.addsms(b, a.number(0), "webhook that fails")
        stack.wait_status(sms_id, {7})

        def settled() -> Samples | None:
            samples = scrape(stack.url)
            rows = db_rows(
                stack.db,
                "SELECT state, COUNT(*), TOTAL(attempts) FROM webhook_outbox"
                " WHERE state <> 'delivered' GROUP BY state",
            )
            pending = sum(n for s, n, _ in rows if s == "pending")
            attempts = sum(t for _, _, t in rows)
            failed = one(samples, "simhive_webhook_failed_attempts_total")
            # The outbox figure may come from a count up to 10 s old (refresh_seconds): wait for
            # it to agree as well.
            backlog = one(samples, "simhive_webhook_outbox", state="pending")
            if pending >= 2 and attempts >= 2 and failed == attempts and backlog == pending:
                return samples
            return None

        wait_until(settled, 60, "failed webhook attempts counted", interval=0.5)
    finally:
        stack.set_device_settings(b, {"webhook_status": None})


async def test_a_metrics_token_is_required_when_set(db: AppDb) -> None:
    token = "m" * 24
    app = create_app(db.store(), metrics_settings=MetricsSettings(token=token))
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/metrics")).status == 403
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 24})
        assert wrong.status == 403
        good = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert good.status == 200
        assert "simhive_messages" in await good.text()


class _Transport:
    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("peer", "ok"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("203.0.113.5", False),
        ("10.0.0.2", False),
        ("::ffff:127.0.0.1", True),
        ("fe80::1", False),
    ],
)
def test_without_a_token_only_loopback_clients_are_answered(peer: str, ok: bool) -> None:
    request = make_mocked_request("GET", "/metrics", transport=_Transport((peer, 40000)))
    assert allowed(request, MetricsSettings()) is ok


async def test_pool_messages_waiting_for_a_sim(db: AppDb) -> None:
    app = create_app(db.store())
    async with TestClient(TestServer(app)) as client:
        gw = app[GATEWAY]
        account, _ = await gw.create_account("pool@example.com", "pool-password")
        await gw.routing.create(account, "empty")
        for number in ("+4915112345678", "+4915112345679"):
            await gw.send(account, Outgoing(number, "waits", None, pool="empty"))
        text = await (await client.get("/metrics")).text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    assert one(samples, "simhive_pool_waiting", account=str(account.id), pool="empty") == 2
    assert one(samples, "simhive_messages", status="new", device="", sim="") == 2
    assert samples.get("simhive_queue_depth", []) == []  # no SIM holds them yet


async def test_scrapes_share_one_count_within_the_refresh_interval(db: AppDb) -> None:
    store = db.store()
    await store.open()
    reads = console_store(store)
    assert reads is not None
    await reads.open()
    try:
        calls = 0
        original = reads.metrics

        async def counted(*args: Any) -> MetricsSnapshot:
            nonlocal calls
            calls += 1
            return await original(*args)

        reads.metrics = counted  # type: ignore[method-assign,assignment]
        cache = SnapshotCache(MetricsSettings().refresh_seconds)
        first = await cache.get(reads)
        assert await cache.get(reads) is first and calls == 1
        cache.refresh_seconds = 0
        assert await cache.get(reads) is not first and calls == 2
    finally:
        await reads.close()
        await store.close()


async def test_scraped_figures_are_the_stored_ones(db: AppDb) -> None:
    """Messages with known send and report times: exact counts, buckets and sums in the scrape
    (tests/store/test_console_pg.py runs this on PostgreSQL too)."""
    app = create_app(db.store())
    async with TestClient(TestServer(app)) as client:
        gw = app[GATEWAY]
        account, _ = await gw.create_account("figures@example.com", "figures-password")
        device, _ = await gw.create_device(account, "hall")
        ids = [
            (await gw.send(account, Outgoing(f"+4915112345{i:03d}", "m", device.id)))[0]
            for i in range(4)
        ]
        # (status, seconds from due to sent, seconds from sent to the report); ids[3] stays new.
        for sms_id, status, latency, delay in (
            (ids[0], 7, 0.05, 0.5),
            (ids[1], 8, 0.3, 7.0),
            (ids[2], 6, 2.0, None),
        ):
            (due,) = await db.row("SELECT due FROM messages WHERE id = ?", sms_id)
            sent = due + int(latency * 1e6)
            reported = None if delay is None else sent + int(delay * 1e6)
            await db.rows(
                "UPDATE messages SET status = ?, senttime = ?, delivered_time = ? WHERE id = ?",
                status, sent, reported, sms_id,
            )  # fmt: skip
        text = await (await client.get("/metrics")).text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    sim = str((await db.row("SELECT sim FROM messages WHERE id = ?", ids[3]))[0])
    where = {"direction": "out", "device": str(device.id), "sim": sim}
    for name in ("new", "sent", "delivered", "not_delivered"):
        assert one(samples, "simhive_messages", status=name, **where) == 1
    assert one(samples, "simhive_queue_depth", device=str(device.id), sim=sim) == 1
    sent_family = "simhive_send_latency_seconds"
    assert one(samples, sent_family + "_count") == 3
    assert one(samples, sent_family + "_sum") == pytest.approx(2.35)
    for le, n in (("0.1", 1), ("0.25", 1), ("0.5", 2), ("1.0", 2), ("2.5", 3), ("+Inf", 3)):
        assert one(samples, sent_family + "_bucket", le=le) == n
    report_family = "simhive_delivery_report_delay_seconds"
    assert one(samples, report_family + "_count") == 2
    assert one(samples, report_family + "_sum") == pytest.approx(7.5)
    for le, n in (("1.0", 1), ("5.0", 1), ("10.0", 2), ("+Inf", 2)):
        assert one(samples, report_family + "_bucket", le=le) == n
