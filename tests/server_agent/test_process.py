"""A real `simhive-server` process: a webhook whose receiver is down survives `kill -9` of the
server and is delivered, signed, by the next server process once the receiver is up."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.procs import console_script, free_port, running, wait_port
from tests.support.stack import wait_until

PASSWORD = "process-password-1"


def cli(*args: str) -> Any:
    out = subprocess.run([console_script("simhive-server"), *args], capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    return json.loads(out.stdout)


class _Recorder(BaseHTTPRequestHandler):
    got: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).got.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_webhook_survives_kill_9_of_the_server(tmp_path: Path) -> None:
    db = str(tmp_path / "simhive.sqlite3")
    cli("account", "create", "--db", db, "--email", "p@example.com", "--password", PASSWORD)
    device = cli("device", "create", "--db", db, "--email", "p@example.com", "--title", "box")
    hook_port = free_port()  # nothing listens there yet: every attempt fails
    shown = cli("device", "set", "--db", db, "--device-id", str(device["device_id"]),
                "--webhook-incoming", f"http://127.0.0.1:{hook_port}/in")  # fmt: skip
    secret = shown["webhook_secret"]

    def serve(log_name: str) -> Any:
        port = free_port()
        argv = [console_script("simhive-server"), "run", "--db", db, "--port", str(port),
                "--no-access-log"]  # fmt: skip
        return port, running(argv, log=tmp_path / log_name, stop_signal=signal.SIGKILL)

    port, first = serve("first.log")
    with first as proc:
        wait_port(port)
        msg = {"key": "k1", "sim": 0, "from": "+4917012345", "body": "survive me"}
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/agent/v1/incoming",
            data=json.dumps({"messages": [msg]}).encode(),
            headers={"Authorization": f"Bearer {device['token']}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            sms_id = json.loads(resp.read())["accepted"][0]["sms_id"]
        wait_until(lambda: _attempted(db), 30, "a failed first attempt")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    _Recorder.got = []
    receiver = ThreadingHTTPServer(("127.0.0.1", hook_port), _Recorder)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        port, second = serve("second.log")
        with second:
            wait_port(port)
            # the retry comes after the back-off of the first failure (10 s +-20 %)
            wait_until(lambda: _Recorder.got or None, 60, "the webhook after the restart")
    finally:
        receiver.shutdown()
    headers, body = _Recorder.got[0]
    assert headers["X-Simhive-Event-Id"] == f"incoming:{sms_id}"
    mac = hmac.new(secret.encode(), headers["X-Simhive-Timestamp"].encode() + b"." + body,
                   hashlib.sha256)  # fmt: skip
    assert headers["X-Simhive-Signature"] == "v1=" + mac.hexdigest()
    assert json.loads(body)["body"] == "survive me"


def _attempted(db: str) -> bool:
    rows = cli("device", "webhooks", "--db", db)
    return bool(rows) and int(rows[0]["attempts"]) >= 1 and rows[0]["state"] == "pending"
