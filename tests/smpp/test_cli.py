"""The SMPP command line: credentials, the --smpp-* run options, SMPP over TLS with a real client
(smpplib) against a real server process."""

from __future__ import annotations

import json
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.smpp.esme import Esme
from tests.support.proc import Proc
from tests.support.procs import console_script, free_port, wait_port
from tests.support.tls import self_signed

pytestmark = pytest.mark.integration
EMAIL = "cli@simhive.test"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script("simhive-server"), *args], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def ok(*args: str) -> Any:
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_smpp_logins_of_keys_on_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "c.sqlite3")
    ok("account", "create", "--db", db, "--email", EMAIL, "--password", "password-123")
    made = ok("key", "create", "--db", db, "--email", EMAIL, "--name", "crm", "--scope", "send",
              "--smpp", "--smpp-system-id", "crm1")  # fmt: skip
    assert made["smpp_system_id"] == "crm1" and made["smpp_pool"] is None
    assert len(made["smpp_password"]) == 8 and made["smpp_password"].isalnum()
    assert made["key"].startswith("shk_")
    # Without --smpp-system-id the login is the key's prefix; without --smpp there is none.
    plain = ok("key", "create", "--db", db, "--email", EMAIL, "--name", "p", "--scope", "send",
               "--smpp")  # fmt: skip
    assert plain["smpp_system_id"] == plain["prefix"]
    http = ok("key", "create", "--db", db, "--email", EMAIL, "--name", "h", "--scope", "read")
    assert http["smpp_system_id"] is None and "smpp_password" not in http
    listed = ok("key", "list", "--db", db, "--email", EMAIL)
    assert [k["smpp_system_id"] for k in listed] == ["crm1", plain["prefix"], None]
    assert all("smpp_password" not in k for k in listed)
    errors = [
        (["--name", "x1", "--smpp", "--smpp-system-id", "CRM1"], "is taken by another key"),
        (["--name", "x2", "--smpp", "--smpp-system-id", "much-too-long-for-smpp"], "1-15"),
        (["--name", "x3", "--smpp", "--smpp-system-id", "a b"], "1-15 characters"),
        (["--name", "x4", "--smpp", "--smpp-pool", "nope"], "Pool not found"),
        (["--name", "x5", "--smpp-system-id", "lone"], "go with --smpp"),
    ]
    for extra, message in errors:
        done = run_cli("key", "create", "--db", db, "--email", EMAIL, "--scope", "send", *extra)
        assert done.returncode != 0 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    # Revoked, the key frees its system_id for a new key.
    ok("key", "revoke", "--db", db, "--email", EMAIL, str(made["id"]))
    again = ok("key", "create", "--db", db, "--email", EMAIL, "--name", "crm2", "--scope",
               "send", "--smpp", "--smpp-system-id", "crm1")  # fmt: skip
    assert again["smpp_system_id"] == "crm1"
    gone = run_cli("smpp-credential", "list", "--db", db)
    assert gone.returncode == 2  # one concept: no separate credential command any more
    no_tls = run_cli("run", "--db", db, "--smpp-port", "2775", "--smpp-tls")
    assert no_tls.returncode == 2 and "--smpp-tls needs --tls-cert" in no_tls.stderr


def test_smpp_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    db = str(tmp_path / "tls.sqlite3")
    ok("account", "create", "--db", db, "--email", EMAIL, "--password", "password-123")
    password = ok("key", "create", "--db", db, "--email", EMAIL, "--name", "tls", "--scope",
                  "send", "--scope", "read", "--smpp", "--smpp-system-id",
                  "secure")["smpp_password"]  # fmt: skip
    port, smpp_port = free_port(), free_port()
    server = Proc("server", [console_script("simhive-server"), "run", "--db", db,
                             "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key),
                             "--smpp-port", str(smpp_port), "--smpp-tls"],
                  log=tmp_path / "server.log")  # fmt: skip
    server.start()
    client: Esme | None = None
    try:
        wait_port(smpp_port, timeout=30)
        context = ssl.create_default_context(cafile=str(cert))
        # smpplib wraps its socket without a server_hostname: the certificate is still verified
        # against the CA file, only the name check is off.
        context.check_hostname = False
        client = Esme(smpp_port, "secure", password, ssl_context=context).bind("transceiver")
        (sequence,) = client.send_text("+4915752982212", "over TLS", registered_delivery=0)
        assert client.message_ids([sequence])[0].isdigit()
    finally:
        if client is not None:
            client.close()
        server.stop()


def test_smpp_port_in_use_is_a_clean_error(tmp_path: Path) -> None:
    import socket

    db = str(tmp_path / "busy.sqlite3")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_cli("run", "--db", db, "--port", str(free_port()), "--smpp-port", str(port))
    assert done.returncode == 2  # a start-up failure: one line with a hint
    assert f"cannot listen for SMPP on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
