"""docs/api.md: every curl example runs as written against a real server process, every route has
one, the answers shown have the shape the server gives, and the error code table is the code's."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from simhive.server.api.v1.routes import ROUTES
from simhive.server.core import limits
from simhive.server.core.codes import CODES
from tests.server._server import server
from tests.server.test_docs_curl import json_objects, same_shape
from tests.support.procs import ROOT

DOC = ROOT / "docs" / "api.md"
FENCE_RE = re.compile(r"```(sh|json)\n(.*?)```", re.DOTALL)
CALL_RE = re.compile(r'curl -s (?:--fail-with-body )?(?:-X (\w+) )?"\$SIMHIVE(/api/v1/[^"?]*)')


def blocks() -> list[tuple[str, str, int, int]]:
    return [
        (m.group(1), m.group(2), m.start(), m.end()) for m in FENCE_RE.finditer(DOC.read_text())
    ]


def examples() -> list[str]:
    return [text for kind, text, _, _ in blocks() if kind == "sh" and "curl" in text]


def shown_answers() -> list[tuple[str, Any]]:
    """(example, answer) where a JSON block follows an example with nothing in between."""
    text = DOC.read_text()
    found = blocks()
    out = []
    for (kind, body, _, end), (next_kind, answer, start, _) in zip(found, found[1:], strict=False):
        if kind == "sh" and next_kind == "json" and not text[end:start].strip():
            out.append((body, json.loads(answer)))
    return out


def test_every_route_has_an_example() -> None:
    calls = {(m.group(1) or "GET", m.group(2)) for b in examples() for m in CALL_RE.finditer(b)}
    for route in ROUTES:
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", route.full_path) + "$")
        assert any(verb == route.method and pattern.match(path) for verb, path in calls), route


def test_error_code_table_is_the_codes_table() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| ?(\d*) ?\| (.+?) \|$", DOC.read_text(), re.M)
    assert [(c, int(s), o or None, m) for c, s, o, m in rows] == [
        (c.code, c.status, c.onfon, c.meaning) for c in CODES]  # fmt: skip


def test_limits_table_is_the_code_limits() -> None:
    text = DOC.read_text()
    for row in (
        f"| recipients in one send | {limits.MAX_API_RECIPIENTS:,} (`too_many_numbers` beyond) |",
        f"| recipients / text of a GET send | {limits.MAX_GET_RECIPIENTS} /"
        f" {limits.MAX_GET_TEXT_CHARS} characters |",
        f"| text | {limits.MAX_BODY_CHARS:,} characters |",
        f"| page of a list | {limits.MAX_API_PAGE:,} rows (default {limits.DEFAULT_API_PAGE}) |",
        f"| schedule | at most {limits.MAX_SCHEDULE_DAYS} days ahead |",
        f"| validity | 1 minute to {limits.MAX_VALIDITY_MINUTES // 1440} days |",
        f"| key rate limit | default {limits.KEY_RATE_PER_MINUTE} requests per minute, at most"
        f" {limits.KEY_RATE_MAX_PER_MINUTE:,} |",
    ):
        assert row in text, row


@pytest.mark.integration
def test_every_curl_example_works(tmp_path: Path) -> None:
    with server(tmp_path) as srv:
        # An SMS arrives through the agent protocol, for the incoming examples to read.
        requests.post(
            f"{srv.url}/agent/v1/incoming",
            json={"messages": [{"key": "k1", "sim": 0, "from": "+4917012345", "body": "Hello"}]},
            headers={"Authorization": f"Bearer {srv.device_token}"},
            timeout=10,
        ).raise_for_status()
        env = {**os.environ, "SIMHIVE": srv.url, "KEY": srv.api_key,
               "DEVICE_ID": str(srv.device_id)}  # fmt: skip
        outputs: dict[str, list[Any]] = {}
        for block in examples():
            result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env,
                                    capture_output=True, text=True, timeout=60)  # fmt: skip
            assert result.returncode == 0, (block, result.stdout, result.stderr)
            answers = json_objects(result.stdout)
            assert answers, block
            for answer in answers:
                assert not (isinstance(answer, dict) and "error" in answer), (block, answer)
            outputs[block] = answers
        shown = shown_answers()
        assert len(shown) >= 5
        for block, doc in shown:
            same_shape(doc, outputs[block][-1])
    assert outputs[examples()[0]] == [["3.1.0", len({r.path for r in ROUTES})]]
    assert outputs[examples()[1]] == [{"operations": len(ROUTES)}]  # the reference page
    log = srv.log.read_text()
    assert srv.api_key not in log and "api_key=***" in log
