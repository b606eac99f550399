"""The `simhive-server` CLI and the server as real processes: admin commands next to a running
server, token reset, durability across kill -9, and the demo command."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import pytest

from simhive.server.core.errors import AuthError
from simhive.server.core.gateway import Gateway
from simhive.server.store.sqlite import SqliteStore
from tests.server._server import PASSWORD, cli, cli_json, server
from tests.support.procs import ROOT, console_script, free_port, running, wait_port
from tests.support.tls import self_signed

pytestmark = pytest.mark.integration


def get(url: str, method: str, **params: Any) -> dict[str, Any]:
    with urlopen(f"{url}/getdata/{method}?{urlencode(params)}", timeout=30) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


def post(url: str, method: str, **params: Any) -> dict[str, Any]:
    with urlopen(f"{url}/getdata/{method}", data=urlencode(params).encode(), timeout=30) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_account_and_device_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "x.sqlite3")
    acc = cli_json("account", "create", "--db", db, "--email", "ops@example.com",
                   "--password", PASSWORD, "--timezone", "Europe/Berlin")  # fmt: skip
    assert set(acc) == {"account_id", "email", "timezone", "token"}
    assert isinstance(acc["account_id"], int) and re.fullmatch(r"[0-9a-f]{32}", acc["token"])
    dup = cli("account", "create", "--db", db, "--email", "OPS@example.com", "--password",
              PASSWORD, check=False)  # fmt: skip
    assert dup.returncode == 1 and "exists already" in dup.stderr
    bad = cli("account", "create", "--db", db, "--email", "x@y.z", "--password", "short",
              check=False)  # fmt: skip
    assert bad.returncode == 1 and "at least 8" in bad.stderr
    dev = cli_json("device", "create", "--db", db, "--email", "ops@example.com", "--title", "A")
    assert set(dev) == {"device_id", "account_id", "title", "token"}
    assert re.fullmatch(r"[0-9a-f]{32}", dev["token"]) and dev["token"] != acc["token"]
    nobody = cli("device", "create", "--db", db, "--email", "no@example.com", "--title", "B",
                 check=False)  # fmt: skip
    assert nobody.returncode == 1 and "No account" in nobody.stderr
    accounts = cli_json("account", "list", "--db", db)
    assert [(a["email"], a["timezone"], a["devices"]) for a in accounts] == [
        ("ops@example.com", "Europe/Berlin", [dev["device_id"]])
    ]
    devices = cli_json("device", "list", "--db", db, "--email", "ops@example.com")
    assert [(d["device_id"], d["title"], d["lastseen"]) for d in devices] == [
        (dev["device_id"], "A", None)
    ]
    rules = cli_json("device", "prefix-rules", "--db", db, "--device-id", str(dev["device_id"]),
                     "--rule", "0=+49")  # fmt: skip
    assert rules["prefix_rules"] == [["0", "+49"]]
    assert "token" not in json.dumps(accounts) and "token" not in json.dumps(devices)


def test_default_db_from_environment(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "SIMHIVE_DATA": str(tmp_path / "data")}
    result = subprocess.run(
        [console_script("simhive-server"), "account", "create", "--email", "e@example.com",
         "--password", PASSWORD],  # fmt: skip
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "simhive.sqlite3").exists()


def test_cli_works_while_the_server_runs(tmp_path: Path) -> None:
    with server(tmp_path) as srv:
        db = str(srv.db)
        # a device created from the CLI is usable at once by the running server
        dev = cli_json("device", "create", "--db", db, "--email", srv.email, "--title", "new")
        listed = get(srv.url, "getalldevices", token=srv.token)
        assert str(dev["device_id"]) in listed["device"]
        sent = post(srv.url, "addsms", token=srv.token, device_id=dev["device_id"],
                    sendto="+4915752982212", body="hi")  # fmt: skip
        assert sent["error"] == 0
        # prefix rules set from the CLI apply (after the server's short device cache)
        cli("device", "prefix-rules", "--db", db, "--device-id", str(srv.device_id),
            "--rule", "0=+49")  # fmt: skip

        def rewritten() -> bool:
            r = post(srv.url, "addsms", token=srv.token, device_id=srv.device_id,
                     sendto="015752982212", body="rule")  # fmt: skip
            item = get(srv.url, "getallsms", token=srv.token)["smss"][str(r["sms_id"])]
            return bool(item["sendto"] == "+4915752982212")

        eventually(rewritten)
        # token reset revokes the old token (after the server's short token cache)
        new = cli_json("token", "reset", "--db", db, "--email", srv.email)
        assert new["token"] != srv.token
        assert get(srv.url, "getalldevices", token=new["token"])["error"] == 0
        eventually(lambda: get(srv.url, "getalldevices", token=srv.token)["error"] == 1)
        # device token reset prints a fresh device token
        dt = cli_json("token", "reset", "--db", db, "--device-id", str(srv.device_id))
        assert dt["device_id"] == srv.device_id and dt["token"] != srv.device_token
        usage = cli("token", "reset", "--db", db, check=False)
        assert usage.returncode == 2


def test_acknowledged_messages_survive_kill_9(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with server(tmp_path) as srv:

        def send(i: int) -> int:
            r = post(srv.url, "addsms", token=srv.token, device_id=srv.device_id,
                     sendto="+4915752982212", body=f"m{i}")  # fmt: skip
            assert r["error"] == 0
            return int(r["sms_id"])

        with ThreadPoolExecutor(16) as pool:
            acked = list(pool.map(send, range(300)))
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
    conn = sqlite3.connect(srv.db)
    stored = {r[0] for r in conn.execute("SELECT id FROM messages")}
    conn.close()
    assert set(acked) <= stored


def test_demo_starts_prints_and_stops(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    port = free_port()
    log = tmp_path / "demo.log"
    argv = [console_script("simhive-server"), "demo", "--state", str(state), "--port", str(port)]
    with running(argv, log=log, stop_signal=signal.SIGINT, stop_timeout=90) as proc:
        wait_port(port)
        eventually(lambda: "Stop with Ctrl-C" in log.read_text())
        info = json.loads((state / "demo.json").read_text())
        assert info["server_url"] == f"http://127.0.0.1:{port}"
        # the state holds tokens and the database: private to its user
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (state, state / "demo.json")}
        assert modes == {"demo-state": 0o700, "demo.json": 0o600}, modes
        assert [d["title"] for d in info["devices"]] == ["demo-modem-1", "demo-modem-2"]
        token = info["account"]["token"]
        assert token in log.read_text()
        # the two printed commands, pasted as they are
        lines = [line.strip() for line in log.read_text().splitlines()
                 if line.strip().startswith(("SMS_ID=", "curl "))]  # fmt: skip
        assert len(lines) == 2
        result = subprocess.run(["bash", "-c", "\n".join(lines)], capture_output=True,
                                text=True, timeout=60)  # fmt: skip
        # the agent may already be sending it: any status is fine, an error is not
        assert '"error":0' in result.stdout and '"status_description"' in result.stdout, result
        # quickstart.md's gettoken example, run from the directory holding demo-state/
        quickstart = (ROOT / "docs" / "quickstart.md").read_text()
        blocks = [b for b in re.findall(r"```sh\n(.*?)```", quickstart, re.DOTALL)
                  if "gettoken" in b]  # fmt: skip
        assert len(blocks) == 1
        script = blocks[0].replace("http://127.0.0.1:8080", info["server_url"])
        got = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        answer = json.loads(got.stdout)
        assert answer["error"] == 0 and re.fullmatch(r"[0-9a-f]{32}", answer["token"]), got
    assert proc.returncode == 0, _tails(log, state)
    # the server child is gone: the port is free again
    eventually(lambda: _port_free(port))
    # a second start reuses the account, its token and the devices
    port2 = free_port()
    argv2 = [console_script("simhive-server"), "demo", "--state", str(state), "--port", str(port2)]
    with running(argv2, log=tmp_path / "demo2.log", stop_timeout=90) as proc2:
        wait_port(port2)
        eventually(lambda: json.loads((state / "demo.json").read_text())["server_url"].endswith(
            str(port2)))  # fmt: skip
        again = json.loads((state / "demo.json").read_text())
        assert again["account"]["token"] == token
        assert again["devices"] == info["devices"]
        # the demo's SMS goes to the other device's SIM, which receives it: count the sender's
        sender = again["devices"][0]["device_id"]
        assert get(again["server_url"], "getallsms", token=token, onlycount=1,
                   device_id=sender)["count"] == 1  # fmt: skip
    assert proc2.returncode == 0, _tails(tmp_path / "demo2.log", state)


def _tails(log: Path, state: Path) -> str:
    out = []
    for path in (log, *sorted(state.glob("*.log"))):
        lines = path.read_text(errors="replace").splitlines()[-8:] if path.exists() else []
        out.append(f"--- {path.name}\n" + "\n".join(lines))
    return "\n".join(out)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_sigterm_ends_long_polls_and_stops_promptly(tmp_path: Path) -> None:
    import threading
    import urllib.request

    with server(tmp_path) as srv:
        outcome: dict[str, object] = {}

        def poll() -> None:
            req = urllib.request.Request(
                f"{srv.url}/agent/v1/pull",
                data=json.dumps({"wait": 25}).encode(),
                headers={
                    "Authorization": f"Bearer {srv.device_token}",
                    "Content-Type": "application/json",
                },  # fmt: skip
            )
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    outcome["answer"] = json.loads(r.read())
            except OSError as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=poll)
        thread.start()
        eventually(lambda: "/agent/v1/pull" not in srv.log.read_text() and thread.is_alive())
        time.sleep(0.5)  # let the poll reach the server and start waiting
        srv.proc.send_signal(signal.SIGTERM)
        # The poll would hold for 25 s; shutdown wakes it, so the server ends well before that.
        srv.proc.wait(15)
        thread.join(30)
    assert srv.proc.returncode == 0
    assert outcome.get("answer") == {"lease_id": None, "lease_expires": None, "messages": []}


def test_tls(tmp_path: Path) -> None:
    import ssl

    cert, key = self_signed(tmp_path)
    db = str(tmp_path / "tls.sqlite3")
    acc = cli_json("account", "create", "--db", db, "--email", "t@example.com",
                   "--password", PASSWORD)  # fmt: skip
    port = free_port()
    argv = [console_script("simhive-server"), "run", "--db", db, "--port", str(port),
            "--tls-cert", str(cert), "--tls-key", str(key)]  # fmt: skip
    with running(argv, log=tmp_path / "tls.log"):
        wait_port(port)
        context = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{port}/getdata/getalldevices?token={acc['token']}"
        with urlopen(url, context=context, timeout=30) as r:
            assert json.loads(r.read()) == {"error": 0, "message": "OK", "count": 0, "device": {}}
    half = cli("run", "--db", db, "--tls-cert", str(cert), check=False)
    assert half.returncode == 2 and "go together" in half.stderr


def test_cli_errors_are_clean(tmp_path: Path) -> None:
    db = str(tmp_path / "e.sqlite3")
    cli_json("account", "create", "--db", db, "--email", "e@example.com", "--password", PASSWORD)
    cases = [
        (["token", "reset", "--db", db, "--device-id", "99"], 1, "Device not found"),
        (["token", "reset", "--db", db, "--email", "nobody@example.com"], 1, "No account"),
        (["device", "prefix-rules", "--db", db, "--device-id", "1", "--rule", "049"], 2,
         "expected PREFIX=REPLACEMENT"),
        (["device", "prefix-rules", "--db", db, "--device-id", "7", "--rule", "0=+49"], 1,
         "no device 7"),
        (["account", "create", "--db", db, "--email", "x@example.com", "--password", PASSWORD,
          "--timezone", "Mars/Base"], 1, "Invalid timezone"),
        (["account", "create", "--db", db, "--email", "not-an-email", "--password", PASSWORD],
         1, "Invalid email"),
    ]  # fmt: skip
    for args, code, text in cases:
        result = cli(*args, check=False)
        assert result.returncode == code, (args, result.stderr)
        assert text in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_account_set_password_and_timezone(tmp_path: Path) -> None:
    with server(tmp_path) as srv:
        db = str(srv.db)
        changed = cli_json(
            "account", "set", "--db", db, "--email", srv.email,
            "--password", "a-new-password", "--timezone", "Europe/Berlin",
        )  # fmt: skip
        assert changed["timezone"] == "Europe/Berlin"
        old = post(srv.url, "gettoken", email=srv.email, **{"pass": PASSWORD})
        assert old == {"error": 1, "message": "Login or password incorrect"}
        new = post(srv.url, "gettoken", email=srv.email, **{"pass": "a-new-password"})
        assert new["error"] == 0
        # the running server renders dates in the new zone once its 2 s account cache expires
        eventually(lambda: get(srv.url, "getdevicestatus", token=srv.token,
                               device_id=srv.device_id)["lastseen"]["timezone"]
                   == "Europe/Berlin")  # fmt: skip
        usage = cli("account", "set", "--db", db, "--email", srv.email, check=False)
        assert usage.returncode == 2


def test_account_create_without_a_terminal_takes_the_password_from_stdin_or_env(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "x.sqlite3")
    argv = [console_script("simhive-server"), "account", "create", "--db", db]

    def create(email: str, *extra: str, stdin: str | None = None, **env: str) -> Any:
        return subprocess.run([*argv, "--email", email, *extra], input=stdin, text=True,
                              capture_output=True, timeout=60,
                              env={**os.environ, **env})  # fmt: skip

    # No terminal, no password: one line saying how, not a GetPassWarning and "Aborted!".
    asked = create("a@example.com", stdin="")
    assert asked.returncode == 2 and asked.stdout == ""
    assert asked.stderr == (
        "Error: no password given, and no terminal to ask for one; hint: pipe it in with "
        "--password-stdin, or set SIMHIVE_PASSWORD\n"
    )
    piped = create("a@example.com", "--password-stdin", stdin="piped secret 1\n")
    assert piped.returncode == 0, piped.stderr
    from_env = create("b@example.com", stdin="", SIMHIVE_PASSWORD="secret from env")
    assert from_env.returncode == 0, from_env.stderr
    empty = create("c@example.com", "--password-stdin", stdin="\n")
    assert empty.returncode == 1 and "stdin held no password" in empty.stderr
    changed = subprocess.run([console_script("simhive-server"), "account", "set", "--db", db,
                              "--email", "b@example.com", "--password-stdin"],
                             input="changed secret\n", text=True, capture_output=True,
                             timeout=60)  # fmt: skip
    assert changed.returncode == 0, changed.stderr

    async def logins() -> list[str]:
        store = SqliteStore(db)
        await store.open()
        try:
            gw = Gateway(store)
            ok = [(await gw.login("a@example.com", "piped secret 1")).email,
                  (await gw.login("b@example.com", "changed secret")).email]  # fmt: skip
            with pytest.raises(AuthError):
                await gw.login("b@example.com", "secret from env")
            return ok
        finally:
            await store.close()

    assert asyncio.run(logins()) == ["a@example.com", "b@example.com"]


def test_lease_and_long_poll_are_server_settings_the_agent_is_told(tmp_path: Path) -> None:
    options = ("--lease-seconds", "3", "--long-poll-seconds", "2")
    with server(tmp_path, options=options) as srv:

        def agent(route: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
            req = Request(f"{srv.url}/agent/v1/{route}", data=json.dumps(body).encode(),
                          headers={"Authorization": f"Bearer {srv.device_token}",
                                   "Content-Type": "application/json"})  # fmt: skip
            with urlopen(req, timeout=timeout) as r:
                answer: dict[str, Any] = json.loads(r.read())
                return answer

        settings = agent("hello", {"sims": [{"slot": 0}]}, 30)["settings"]
        assert (settings["lease_seconds"], settings["long_poll_seconds"]) == (3, 2)
        # A pull asking to wait a minute is answered empty after the server's 2 s (the 20 s
        # client timeout only stops a hang; the default of 25 s would hit it).
        assert agent("pull", {"max": 5, "wait": 60}, 20)["messages"] == []
