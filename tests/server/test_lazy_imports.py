"""A started `simhive-server run` holds only what it serves with: the web console (jinja2 and the
page modules), the OpenAPI document and API reference page, prometheus_client, the SMPP server and
the PostgreSQL driver are loaded when first used, and then work at once (docs/benchmarks.md has
the memory each saves and what its first request costs). Each check runs the real command in a
fresh interpreter (_lazy_probe.py) and reads what it has imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.procs import ROOT, free_port

PROBE = Path(__file__).with_name("_lazy_probe.py")


def run(tmp_path: Path, paths: list[str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(PROBE), str(free_port()), ",".join(paths),
         "--db", str(tmp_path / "db.sqlite3"), *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_a_started_sqlite_server_has_loaded_none_of_the_lazy_parts(tmp_path: Path) -> None:
    report = run(tmp_path, [])
    assert report["started"] == []


def test_each_lazy_part_loads_at_its_first_request_and_answers_it(tmp_path: Path) -> None:
    report = run(tmp_path, ["/login", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"])
    login, metrics = report["/login"], report["/metrics"]
    openapi, docs = report["/api/v1/openapi.json"], report["/api/v1/docs"]
    assert login["status"] == 200 and "jinja2" in login["loaded"]
    assert "simhive.server.console.base" in login["loaded"]
    assert "prometheus_client" not in login["loaded"]  # the console alone does not need it
    assert metrics["status"] == 200 and "prometheus_client" in metrics["loaded"]
    assert "simhive.server.api.v1.openapi" not in metrics["loaded"]
    assert openapi["status"] == 200 and "simhive.server.api.v1.openapi" in openapi["loaded"]
    assert "simhive.server.api.v1.reference" not in openapi["loaded"]
    assert docs["status"] == 200 and "simhive.server.api.v1.reference" in docs["loaded"]
    # Still nothing of SMPP or PostgreSQL on a SQLite server without --smpp-port.
    assert not {"simhive.server.smpp.server", "asyncpg"} & set(docs["loaded"])


def test_smpp_is_loaded_when_enabled(tmp_path: Path) -> None:
    report = run(tmp_path, [], "--smpp-port", str(free_port()))
    # The probe sees an import when there is one; the other parts stay unloaded.
    assert report["started"] == ["simhive.server.smpp.server"]
