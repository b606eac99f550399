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


FENCE_RE = re.compile(r"```(sh|json)\n(.*?)```", re.DOTALL)


def documented_answers() -> list[tuple[str, dict[str, Any]]]:
    """Each curl example with the JSON answer the page shows right after it (before the next
    example); examples without one are left out."""
    out: list[tuple[str, dict[str, Any]]] = []
    example: str | None = None
    for kind, text in FENCE_RE.findall(DOC.read_text()):
        if kind == "sh":
            example = text if "curl" in text else None
        elif example is not None:
            out.append((example, json.loads(text)))
            example = None
    return out


def same_shape(doc: Any, got: Any, path: str = "$") -> None:
    """`got` has the documented keys and JSON types; null on either side matches anything (a
    documented null is an absent value here, and the other way round). Objects keyed by ids are
    compared entry by entry against the documented entry."""
    if doc is None or got is None:
        return
    assert type(got) is type(doc), (path, doc, got)
    if isinstance(doc, dict):
        if doc and all(k.isdigit() for k in doc):
            assert all(k.isdigit() for k in got), (path, got)
            [entry] = doc.values()
            for key, value in got.items():
                same_shape(entry, value, f"{path}.{key}")
            return
        assert set(got) == set(doc), (path, sorted(doc), sorted(got))
        for key in doc:
            same_shape(doc[key], got[key], f"{path}.{key}")
    elif isinstance(doc, list) and doc and got:
        for index, value in enumerate(got):
            same_shape(doc[0], value, f"{path}[{index}]")


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
        outputs: dict[str, list[dict[str, Any]]] = {}
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
            outputs[block] = answers
        # What the page shows after an example is what its (last) answer looks like.
        shown = documented_answers()
        assert len(shown) >= 11
        for block, doc in shown:
            same_shape(doc, outputs[block][-1])
    log = srv.log.read_text()
    assert srv.token not in log and PASSWORD not in log  # access log masks secrets
    assert "token=***" in log
