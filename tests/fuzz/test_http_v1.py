"""Short run of the hostile HTTP fuzzer against /api/v1, from the document the server serves
(about 3,500 requests, half a minute); `scripts/run-fuzz --only http-v1` runs it longer."""

from __future__ import annotations

from pathlib import Path

import pytest

from simhive.server.api.v1.routes import ROUTES
from tests.fuzz.http import run_http_fuzz, run_v1_stateful, server_errors
from tests.server._server import server

pytestmark = pytest.mark.integration

V1_EXAMPLES = 25


def test_api_v1_has_no_5xx_and_answers_match_its_served_document(tmp_path: Path) -> None:
    stats = run_http_fuzz(tmp_path, V1_EXAMPLES, apis=("v1",))
    print(f"/api/v1 fuzz: {stats.requests} requests, by status {dict(stats.statuses)}")
    operations = {label.split(" (")[0] for label in stats.per_operation}
    assert operations == {f"{r.method} {r.full_path}" for r in ROUTES}
    assert stats.requests >= 2500
    # Accepted and refused requests alike: the handlers behind the key were reached.
    for status in (200, 201, 400, 401, 404):
        assert stats.statuses[status] > 0, stats.statuses


def test_api_v1_stateful_runs_follow_the_links(tmp_path: Path) -> None:
    with server(tmp_path, email="fuzz@example.com") as srv:
        calls = run_v1_stateful(srv, examples=10, steps=5)
        assert srv.proc.poll() is None
        errors = server_errors(srv.log)
    assert errors == [], "\n".join(errors[:20])
    print(f"/api/v1 stateful fuzz: {sum(calls.values())} calls, {dict(calls)}")
    # Links were followed: operations reached only through a link (their ids come from records
    # created in the same run) were called.
    by_id = {r.operation_id: f"{r.method} {r.full_path}" for r in ROUTES}
    targets = {by_id[t] for r in ROUTES for t in r.links}
    assert sum(calls[label] for label in targets) > 0, calls
