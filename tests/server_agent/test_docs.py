"""docs/webhooks.md stays honest: its verification example accepts what the server signs and
rejects tampering, and its option table names options the CLI really has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from simhive.server.cli import main as cli
from simhive.server.core.dates import US, now_us
from simhive.server.core.models import Message
from simhive.server.core.webhooks import request_for
from simhive.server.store.agent_base import WebhookJob

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def _job(secret: str) -> WebhookJob:
    msg = Message(id=7, account_id=1, device_id=2, direction="out", sendto="+4915752982212",
                  body="hi", sim=0, status=7, urgent=False, customerid=None, created=0,
                  timetosend=None, senttime=None, delivered_time=None, paket_id=None,
                  paket_title=None, paket_body=None)  # fmt: skip
    return WebhookJob(id=1, device_id=2, kind="status", event_key="status:7:7", url="http://x",
                      status=7, attempts=0, secret=secret, message=msg, device_title="box",
                      timezone="UTC", sent_at=None)  # fmt: skip


def test_the_documented_verifier_checks_real_signatures() -> None:
    [code] = _python_blocks(DOC.read_text())
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # our own documentation
    verify = namespace["verify"]
    secret = "0123456789abcdef0123"
    body, headers = request_for(_job(secret), now_us())
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify("another-secret-000000", headers, body)
    old, old_headers = request_for(_job(secret), now_us() - 3600 * US)
    assert not verify(secret, old_headers, old)  # replayed an hour later


def test_documented_options_exist() -> None:
    documented = set(re.findall(r"`(--[a-z-]+)", DOC.read_text()))
    result = CliRunner().invoke(cli, ["device", "set", "--help"])
    assert result.exit_code == 0
    assert documented <= set(re.findall(r"(--[a-z-]+)", result.output)), documented
