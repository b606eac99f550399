"""Short run of the hostile HTTP fuzzer against a real server (well under a minute);
`scripts/run-fuzz` runs it with many more examples per operation."""

from __future__ import annotations

from pathlib import Path

import pytest

from simhive.server.api import agent, compat
from simhive.server.api.enroll import PATH as ENROLL_PATH
from tests.fuzz.http import SPECS, run_http_fuzz

pytestmark = pytest.mark.integration

SHORT_EXAMPLES = 6


def test_no_5xx_and_answers_match_the_openapi_descriptions(tmp_path: Path) -> None:
    stats = run_http_fuzz(tmp_path, SHORT_EXAMPLES)
    operations = {label.split(" (")[0] for label in stats.per_operation}
    # Every compat route by GET and POST, every agent route by POST (enroll besides ROUTES).
    assert len(operations) == 2 * len(compat.METHODS) + len(agent.ROUTES) + 1
    assert f"POST {ENROLL_PATH}" in operations
    assert stats.requests >= len(operations) * 2 * SHORT_EXAMPLES
    # Both sides of authentication were reached: rejected and accepted requests.
    assert stats.statuses[200] > 0 and stats.statuses[401] > 0 and stats.statuses[400] > 0
    assert set(SPECS) == {"compat", "agent"}
