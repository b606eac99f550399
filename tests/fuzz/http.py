"""Hostile HTTP fuzzing of `/getdata/*`, `/agent/v1/*` and `/api/v1/*` with schemathesis,
against a real `simhive-server` process on loopback: the first two from the OpenAPI descriptions
in docs/openapi/, the native API from the document the server itself serves at
/api/v1/openapi.json (generated from its route declarations).

Each operation gets examples in schemathesis' positive mode (requests the description allows)
and negative mode (requests it forbids: wrong types, missing fields, values out of range, broken
bodies). Every case is sent twice: as generated, and with a real token or device token, so the
handlers behind authentication are reached too. A finding is a 5xx, an answer that breaks the
description (status, content type, body shape), or an ERROR line in the server's log.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server._server import Server, server
from tests.support.procs import ROOT
from tests.support.unmeasured import unmeasured

SPECS = {"compat": ROOT / "docs/openapi/compat.yaml", "agent": ROOT / "docs/openapi/agent.yaml"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class HttpStats:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def _keep_own_key(case: Any, srv: Server) -> None:
    """Revoking the fuzzer's own key would end the run: aim such a request at another id."""
    path = case.path_parameters or {}
    if case.operation.label == "DELETE /api/v1/keys/{id}" and path.get("id") == srv.api_key_id:
        path["id"] = srv.api_key_id + 1


def _with_credentials(case: Any, srv: Server, api: str) -> None:
    if api == "v1":
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {srv.api_key}"}
        _keep_own_key(case, srv)
    elif api == "agent":
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {srv.device_token}"}
    elif isinstance(case.query, dict):
        case.query = {**case.query, "token": srv.token}
    elif isinstance(case.body, dict):
        case.body = {**case.body, "token": srv.token}


def _no_long_poll(case: Any) -> None:
    # A pull with nothing due waits up to `wait` seconds by design; the fuzzer asks for the
    # same validation with no wait, or a run would spend most of its time asleep.
    body = case.body
    if isinstance(body, dict) and "wait" in body:
        wait = body["wait"]
        if isinstance(wait, int | float) and not isinstance(wait, bool) and 0 < wait <= 60:
            body["wait"] = 0


LOOPBACK_URL = "http://127.0.0.1:9/hook"  # discard port: refused at once, on this machine


def _local_urls(case: Any) -> None:
    # Webhook URLs (PUT /api/v1/webhooks, PATCH /api/v1/devices/{id}) are delivered to by the
    # server: a generated host name would make it look up and call addresses off this machine.
    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and "://" in value:
            return LOOPBACK_URL
        return value

    if isinstance(case.body, dict | list):
        case.body = walk(case.body)


def _loopback_session() -> requests.Session:
    """A session for the server on loopback that does not consult the environment: with
    trust_env, requests looks up proxy variables and ~/.netrc for every request (5 % of the
    client's time in a run), and none of them applies to 127.0.0.1."""
    session = requests.Session()
    session.trust_env = False
    return session


def fuzz_operations(
    srv: Server, examples: int, stats: HttpStats, apis: tuple[str, ...] = ()
) -> None:
    """`examples` per operation and generation mode (each sent twice) against `srv`, for the
    described APIs (compat, agent) or the named ones (`v1`: the served document)."""
    started = time.monotonic()
    session = _loopback_session()
    for api in apis or tuple(SPECS):
        if api == "v1":
            schema = schemathesis.openapi.from_url(f"{srv.url}/api/v1/openapi.json")
        else:
            schema = schemathesis.openapi.from_path(SPECS[api])
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise AssertionError(f"{api} describes an operation badly: {result.err()}")
            operation = result.ok()
            for mode in MODES:
                with unmeasured():
                    _fuzz_one(operation, mode, api, srv, session, examples, stats)
    stats.seconds += time.monotonic() - started


def _fuzz_one(
    operation: Any,
    mode: GenerationMode,
    api: str,
    srv: Server,
    session: requests.Session,
    examples: int,
    stats: HttpStats,
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        for credentials in (False, True):
            if credentials:
                _with_credentials(case, srv, api)
            _no_long_poll(case)
            _local_urls(case)
            response = case.call(base_url=srv.url, session=session, timeout=30)
            stats.requests += 1
            stats.statuses[response.status_code] += 1
            stats.per_operation[f"{operation.label} ({mode.value})"] += 1
            case.validate_response(response, checks=CHECKS)

    run()


def server_errors(log: Path) -> list[str]:
    """ERROR lines and tracebacks in the server's log: a caught exception is a finding too."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]


def run_http_fuzz(tmp: Path, examples: int, apis: tuple[str, ...] = ()) -> HttpStats:
    """Start a server in `tmp`, fuzz every operation of `apis` (default: the described ones),
    and fail on any server-side error."""
    stats = HttpStats()
    with server(tmp, email="fuzz@example.com") as srv:
        fuzz_operations(srv, examples, stats, apis)
        assert srv.proc.poll() is None, "the server died under fuzzing"
        errors = server_errors(srv.log)
    assert errors == [], "\n".join(errors[:20])
    assert not any(status >= 500 for status in stats.statuses), stats.statuses
    return stats


def run_v1_stateful(srv: Server, examples: int, steps: int) -> Counter[str]:
    """Stateful fuzzing of /api/v1 along the links of its served document (a created template,
    group, key, pool or message is then read, changed, cancelled or deleted), with the same
    checks as every single request. Returns how many calls each operation got."""
    schema = schemathesis.openapi.from_url(f"{srv.url}/api/v1/openapi.json")
    calls: Counter[str] = Counter()
    session = _loopback_session()
    session.headers["Authorization"] = f"Bearer {srv.api_key}"

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": srv.url, "session": session, "timeout": 30}

        def before_call(self, case: Any) -> None:
            _keep_own_key(case, srv)
            _local_urls(case)
            calls[case.operation.label] += 1

        def validate_response(self, response: Any, case: Any, *args: Any, **kw: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    with unmeasured():
        Machine.run(
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
        )
    return calls
