"""docs/openapi/*.yaml describe exactly the routes the server has, with the verbs it answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from simhive.server.api.agent import ROUTES
from simhive.server.api.compat import METHODS
from simhive.server.api.enroll import PATH as ENROLL_PATH
from simhive.server.api.v1.openapi import document
from simhive.server.api.v1.routes import ROUTES as V1_ROUTES
from simhive.server.app import create_app
from simhive.server.store.sqlite import SqliteStore
from tests.fuzz.http import SPECS


def _documented(name: str) -> set[tuple[str, str]]:
    doc: dict[str, Any] = yaml.safe_load(SPECS[name].read_text())
    return {(verb.upper(), path) for path, ops in doc["paths"].items() for verb in ops}


def _served(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(SqliteStore(tmp_path / "db.sqlite3"))
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        out.add((route.method, path))
    return out


def test_compat_description_lists_every_method_by_get_and_post(tmp_path: Path) -> None:
    served = _served(tmp_path)
    assert ("GET", "/getdata/{method}") in served and ("POST", "/getdata/{method}") in served
    real = {(verb, f"/getdata/{name}") for name in METHODS for verb in ("GET", "POST")}
    assert _documented("compat") == real


def test_served_v1_document_lists_every_v1_route(tmp_path: Path) -> None:
    # /api/v1 has no hand-kept description: the server serves one written from the same route
    # declarations that check requests. It must name exactly the routes the server answers.
    served = {(verb, path) for verb, path in _served(tmp_path) if path.startswith("/api/v1/")}
    catch_all = {("*", "/api/v1/{tail}")}  # 404/405 in the API's error shape
    doc = document(V1_ROUTES)
    assert doc["openapi"] == "3.1.0"
    documented = {(verb.upper(), path) for path, ops in doc["paths"].items() for verb in ops}
    itself = {("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/docs")}  # the document, its page
    assert served == documented | catch_all | itself
    assert documented == {(r.method, r.full_path) for r in V1_ROUTES}


def test_agent_description_lists_every_route(tmp_path: Path) -> None:
    served = {(verb, path) for verb, path in _served(tmp_path) if path.startswith("/agent/")}
    enrolling = ("POST", ENROLL_PATH)  # the one agent route without a device token
    assert served == {("POST", f"/agent/v1/{name}") for name in ROUTES} | {enrolling}
    assert _documented("agent") == served


def test_documented_parameters_are_the_ones_the_compat_docs_name() -> None:
    # Every parameter of the description is named in docs/compat-api.md (`name` or `name=...`).
    prose = (SPECS["compat"].parents[1] / "compat-api.md").read_text()
    doc: dict[str, Any] = yaml.safe_load(SPECS["compat"].read_text())
    for path, ops in doc["paths"].items():
        for param in ops["get"]["parameters"]:
            name = param["name"]
            assert f"`{name}`" in prose or f"`{name}=" in prose, (path, name)
        form = ops["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
        assert set(form["schema"]["properties"]) == {p["name"] for p in ops["get"]["parameters"]}
