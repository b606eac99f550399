"""Webhooks from the whole gateway as processes: server, emulated modem and agent. An SMS sent
with addsms is announced sent (6) then delivered (7), and an SMS arriving on the emulated SIM is
announced once, both signed with the device's secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import free_port
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration

SECRET = "gateway-webhook-secret-0123456789"
OUTSIDE = "+4917012345678"  # not an emulated number: the network reports it delivered
SENDER = "+4930123456789"


class _Hooks(BaseHTTPRequestHandler):
    got: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).got.append((self.path, dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # the base class's signature
        pass


@pytest.fixture
def hooks() -> Iterator[str]:
    _Hooks.got = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _signed(headers: dict[str, str], body: bytes) -> bool:
    mac = hmac.new(SECRET.encode(), headers["X-Simhive-Timestamp"].encode() + b"." + body,
                   hashlib.sha256)  # fmt: skip
    return headers.get("X-Simhive-Signature") == "v1=" + mac.hexdigest()


def _posts(path: str, n: int) -> list[dict[str, Any]] | None:
    got = [(h, b) for p, h, b in _Hooks.got if p == path]
    if len(got) < n:
        return None
    assert all(_signed(h, b) for h, b in got)
    return [{**json.loads(b), "_id": h["X-Simhive-Event-Id"]} for h, b in got]


def test_gateway_announces_sent_delivered_and_incoming(tmp_path: Path, hooks: str) -> None:
    settings = {**FAST_PACING, "webhook_status": f"{hooks}/status",
                "webhook_incoming": f"{hooks}/in", "webhook_secret": SECRET}  # fmt: skip
    stack = GatewayStack(tmp_path / "gw", modems=1, dual_sim="none", profile="generic",
                         emulator_args=["--report-delay", "0.2"],
                         device_settings=settings)  # fmt: skip
    try:
        stack.start()
        dev = stack.devices[0]
        stack.wait_agent_ready()
        sms_id = stack.addsms(dev, OUTSIDE, "announce me")
        assert stack.wait_status(sms_id, {7}) == 7
        status = wait_until(lambda: _posts("/status", 2), 60, "status webhooks 6 and 7")
        assert [(s["status_id"], s["_id"]) for s in status] == [
            (6, f"status:{sms_id}:6"), (7, f"status:{sms_id}:7")]  # fmt: skip
        assert status[1]["sendto"] == OUTSIDE and status[1]["senttime"] is not None

        stack.emu.send_sms(SENDER, dev.number(0), "hello hook")
        [got] = wait_until(lambda: _posts("/in", 1), 60, "incoming webhook")
        assert (got["address"], got["body"], got["type"]) == (SENDER, "hello hook", "text")
        assert got["_id"] == f"incoming:{got['sms_id']}"
    except AssertionError:
        print(stack.logs(6000))
        raise
    finally:
        stack.close()
