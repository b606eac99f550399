"""docs/console.md and docs/metrics.md stay true: every page and every metric is described, the
Grafana example asks only for metrics that exist, and the screenshots the docs show are there."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from simhive.server.api.compat import GATEWAY
from simhive.server.app import create_app
from simhive.server.console import ConsoleSettings
from simhive.server.core.models import Sim
from simhive.server.core.sessions import IDLE_SECONDS, MAX_SECONDS
from simhive.server.store.sqlite import SqliteStore

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOT_PAGES = ("/login", "/logout", "/live/", "/static", "/compose/count")


def _console_pages(tmp_path: Path) -> set[str]:
    app = create_app(SqliteStore(tmp_path / "db.sqlite3"))
    pages = set()
    for route in app.router.routes():
        resource = route.resource
        if route.method != "GET" or resource is None:
            continue
        path = re.sub(r"\{(sms_id|device_id)\}", "{id}", resource.canonical)
        if path.startswith(("/getdata", "/agent", "/api/", "/health", "/metrics")):
            continue
        if not path.startswith(NOT_PAGES):
            pages.add(path)
    return pages


def test_console_md_describes_every_page(tmp_path: Path) -> None:
    text = (DOCS / "console.md").read_text()
    pages = _console_pages(tmp_path)
    assert "/messages/{id}" in pages and "/inbox/{number}" in pages
    missing = sorted(p for p in pages if f"`{p}`" not in text)
    assert not missing


def test_console_md_states_the_session_limits() -> None:
    text = (DOCS / "console.md").read_text()
    assert f"after {IDLE_SECONDS // 60} minutes without" in text
    assert f"{MAX_SECONDS // 3600} hours after" in text
    assert f"every {ConsoleSettings().live_interval_seconds:g} second" in text.replace(
        "every second", "every 1 second"
    )


def test_console_md_images_exist() -> None:
    text = (DOCS / "console.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(images) >= 3
    for image in images:
        assert (DOCS / image).is_file(), image


async def test_metrics_md_lists_every_metric_and_grafana_uses_only_those(tmp_path: Path) -> None:
    app = create_app(SqliteStore(tmp_path / "db.sqlite3"))
    async with TestClient(TestServer(app)) as client:
        gw = app[GATEWAY]
        account, _ = await gw.create_account("docs@example.com", "docs-password")
        device, _ = await gw.create_device(account, "d")
        await gw.store.replace_sims(device.id, [Sim(device.id, 0, signal_dbm=-70)], gw.clock())
        text = await (await client.get("/metrics")).text()
    families = {f.name for f in text_string_to_metric_families(text)}
    assert "simhive_sim_signal_dbm" in families and "simhive_http_requests" in families
    doc = (DOCS / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `(simhive_\w+)`", doc, flags=re.M))
    # Counters are documented with their _total sample name.
    names = {n + "_total" if n + "_total" in documented else n for n in families}
    assert names == documented
    dashboard = json.loads((DOCS / "grafana" / "simhive-dashboard.json").read_text())
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"simhive_\w+", target["expr"])
    }
    assert used <= families, used - families
    assert len(used) >= 10
