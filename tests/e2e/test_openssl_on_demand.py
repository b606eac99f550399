"""A plain-HTTP server on SQLite runs without OpenSSL (server/openssl.py) until something needs
it, and then that works: a console login (scrypt: libcrypto), an https webhook (a TLS client:
libssl). Real processes: server, emulator, agent, and a webhook receiver on loopback that speaks
TLS with a self-signed certificate; the server's /proc/PID/maps tells what it has loaded.
(Listening with TLS: tests/server/test_cli_process.py::test_tls, tests/smpp/test_cli.py.)"""

from __future__ import annotations

import http.server
import json
import re
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from simhive.server.core.webhooks import USER_AGENT, verify
from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING, PASSWORD, wait_until
from tests.support.tls import self_signed

pytestmark = pytest.mark.integration

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def openssl_mapped(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {lib for lib in ("libssl", "libcrypto") if lib in maps}


class Hooks(http.server.ThreadingHTTPServer):
    got: list[tuple[dict[str, str], list[str], bytes]]


class Handler(http.server.BaseHTTPRequestHandler):
    server: Hooks

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        user_agents = self.headers.get_all("User-Agent") or []
        self.server.got.append((dict(self.headers), user_agents, raw))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def tls_hooks(certificate: tuple[Path, Path]) -> Iterator[Hooks]:
    """A webhook receiver on https://127.0.0.1:PORT with the self-signed certificate."""
    server = Hooks(("127.0.0.1", 0), Handler)
    server.got = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_openssl_is_loaded_when_first_needed_and_then_works(
    gateway: GatewayFactory,
    tls_hooks: Hooks,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server trusts the receiver's certificate as it would a CA's: through OpenSSL's
    # standard variable, read by ssl.create_default_context() (the processes inherit it).
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    stack = gateway(modems=1, device_settings=FAST_PACING)
    assert stack.server is not None
    pid = stack.server.pid
    device = stack.devices[0]
    sent = [stack.addsms(device, "+4915752982212", f"plain {i}") for i in range(3)]
    for sms_id in sent:
        stack.wait_status(sms_id, {6, 7})  # sent or delivered: the agent has done its part
    assert openssl_mapped(pid) == set()

    # A console login checks the password with scrypt, which only OpenSSL has.
    with requests.Session() as browser:
        form = browser.get(f"{stack.url}/login", timeout=30)
        match = CSRF.search(form.text)
        assert match is not None, form.text
        login = browser.post(f"{stack.url}/login", allow_redirects=False, timeout=30,
                             data={"csrf": match.group(1), "email": stack.email,
                                   "password": PASSWORD})  # fmt: skip
        assert login.status_code == 303 and login.headers["Location"] == "/", login.text
        assert browser.get(f"{stack.url}/", timeout=30).status_code == 200
    assert openssl_mapped(pid) == {"libcrypto"}

    # An https webhook: delivered over TLS, the certificate verified.
    key = str(stack.cli("key", "create", "--email", stack.email, "--name", "hooks",
                        "--scope", "admin")["key"])  # fmt: skip
    url = f"https://127.0.0.1:{tls_hooks.server_address[1]}/hook"
    answer = requests.put(f"{stack.url}/api/v1/webhooks", json={"status": url}, timeout=30,
                          headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    secret = answer.json()["secret"]
    sms_id = stack.addsms(device, "+4915752982212", "announced over TLS")

    def announced() -> list[dict[str, Any]] | None:
        found = [(headers, user_agents, json.loads(raw))
                 for headers, user_agents, raw in list(tls_hooks.got)]  # fmt: skip
        return [body for _, _, body in found if body["id"] == sms_id] or None

    try:
        wait_until(announced, 60, "a status webhook over https", 0.2)
    except AssertionError:
        raise AssertionError(stack.logs()) from None
    for headers, user_agents, raw in tls_hooks.got:
        assert verify(secret, headers["X-Simhive-Timestamp"], raw, headers["X-Simhive-Signature"])
        assert user_agents == [USER_AGENT]  # one, the senders' own
    assert openssl_mapped(pid) == {"libssl", "libcrypto"}
