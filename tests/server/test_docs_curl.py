"""Every curl example in docs/compat-api.md, run as written against a real server process."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.server._server import PASSWORD, server
from tests.support.procs import ROOT

DOC = ROOT / "docs" / "compat-api.md"
BLOCK_RE = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def examples() -> list[str]:
    return [b for b in BLOCK_RE.findall(DOC.read_text()) if "curl" in b]


def json_objects(text: str) -> list[dict[str, Any]]:
    """curl -s prints answers back to back without newlines; split them."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        obj, end = decoder.raw_decode(text, pos)
        out.append(obj)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


@pytest.mark.integration
def test_doc_has_an_example_for_every_route() -> None:
    text = "\n".join(examples())
    for route in ("gettoken", "addsms", "smstosend", "addalotofsms", "getallsms", "savetag",
                  "savecontact", "savepaket", "getalldevices", "getsmsstatus",
                  "getdevicestatus"):  # fmt: skip
        assert f"/getdata/{route}" in text, route


@pytest.mark.integration
def test_every_curl_example_works(tmp_path: Path) -> None:
    blocks = examples()
    assert len(blocks) >= 11
    with server(tmp_path) as srv:
        env = {
            **os.environ,
            "SIMHIVE": srv.url,
            "TOKEN": srv.token,
            "DEVICE_ID": str(srv.device_id),
            "EMAIL": srv.email,
            "PASSWORD": PASSWORD,
        }
        for block in blocks:
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, (block, result.stderr)
            answers = json_objects(result.stdout)
            assert answers, block
            for answer in answers:
                assert answer["error"] == 0, (block, answer)
    log = srv.log.read_text()
    assert srv.token not in log and PASSWORD not in log  # access log masks secrets
    assert "token=***" in log
