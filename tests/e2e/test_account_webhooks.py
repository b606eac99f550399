"""Account webhooks end to end (real server, emulator, agent, and a receiver on loopback): an SMS
sent and delivered, and one received, are announced signed; the agent's device is announced
connected, and disconnected with a reason after its agent is killed."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from simhive.server.core.webhooks import verify
from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration


class Hooks(http.server.ThreadingHTTPServer):
    got: list[tuple[dict[str, str], bytes]]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Hooks

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.got.append((dict(self.headers), raw))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks(("127.0.0.1", 0), Handler)
    server.got = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def events(hooks: Hooks, kind: str) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for headers, raw in list(hooks.got):
        body = json.loads(raw)
        if body["event"] == kind:
            seen.setdefault(headers["X-Simhive-Event-Id"], body)
    return list(seen.values())


def api(stack: GatewayStack, key: str, method: str, path: str, body: Any = None) -> Any:
    answer = requests.request(method, f"{stack.url}/api/v1{path}", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_account_webhooks_from_a_real_gateway(gateway: GatewayFactory, hooks: Hooks) -> None:
    stack = gateway(modems=2, device_settings=FAST_PACING, agent_count=2,
                    server_args=["--agent-offline-seconds", "5"])  # fmt: skip
    key = str(stack.cli("key", "create", "--email", stack.email, "--name", "e2e",
                        "--scope", "admin")["key"])  # fmt: skip
    url = f"http://127.0.0.1:{hooks.server_address[1]}/hook"
    secret = api(stack, key, "PUT", "/webhooks",
                 {"status": url, "incoming": url, "device": url})["secret"]  # fmt: skip
    first, second = stack.devices
    to = second.number(0)  # an emulated SIM: the SMS is delivered and received there
    sent = api(stack, key, "POST", "/messages",
               {"to": [to], "text": "hooked", "device_id": first.device_id})  # fmt: skip
    sms_id = sent["messages"][0]["id"]

    def announced() -> list[dict[str, Any]] | None:
        statuses = {e["status"] for e in events(hooks, "message.status") if e["id"] == sms_id}
        got = [e for e in events(hooks, "incoming.sms") if e["text"] == "hooked"]
        return got if {6, 7} <= statuses and got else None

    try:
        [incoming] = wait_until(announced, 90, "status and incoming webhooks", 0.5)
        wait_until(lambda: {e["device_id"] for e in events(hooks, "device.status")
                            if e["status"] == "connect"} >= {first.device_id, second.device_id}
                   or None, 60, "both devices announced connected")  # fmt: skip
    except AssertionError:
        raise AssertionError(stack.logs()) from None
    assert incoming["device_id"] == second.device_id and incoming["from"] == first.number(0)
    for headers, raw in hooks.got:
        assert verify(secret, headers["X-Simhive-Timestamp"], raw, headers["X-Simhive-Signature"])
    stack.agents[1].kill9()  # the second agent dies: its device goes quiet

    def gone() -> dict[str, Any] | None:
        for e in events(hooks, "device.status"):
            if e["device_id"] == second.device_id and e["status"] == "disconnect":
                return e
        return None

    event = wait_until(gone, 60, "the second device announced disconnected", 0.5)
    assert event["reason"].startswith("no request from the agent for")
    assert not any(e["status"] == "disconnect" and e["device_id"] == first.device_id
                   for e in events(hooks, "device.status"))  # fmt: skip
