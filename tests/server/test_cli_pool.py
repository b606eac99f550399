"""`simhive-server pool ...` as a real process next to a running server (docs/routing.md): every
command, what the running server then does with a pool message, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest

from tests.server._server import cli, cli_json, server

pytestmark = pytest.mark.integration


def test_pool_commands_and_a_running_server_using_them(tmp_path: Path) -> None:
    with server(tmp_path) as s:
        base = ["--db", str(s.db), "--email", s.email]
        made = cli_json("pool", "create", *base, "otp", "--strategy", "full", "--sticky")
        want = {"name": "otp", "kind": "named", "strategy": "full", "sticky": True, "cycle": 0}
        assert {k: made[k] for k in want} == want
        shown = cli_json("pool", "add-sim", *base, "otp", "--device", str(s.device_id),
                         "--sim", "1", "--weight", "3")  # fmt: skip
        assert shown["sims"] == [
            {"device_id": s.device_id, "sim": 1, "weight": 3, "used_this_cycle": 0}]  # fmt: skip
        # The running server takes a message for the new pool at once.
        query = urlencode({"token": s.token, "sendto": "+4915752982212", "body": "hi",
                           "pool": "otp"})  # fmt: skip
        with urlopen(f"{s.url}/getdata/addsms?{query}", timeout=30) as r:
            assert json.loads(r.read())["error"] == 0
        assert cli_json("pool", "show", *base, "otp")["waiting"] == 1
        refused = cli("pool", "delete", *base, "otp", check=False)
        assert refused.returncode == 1
        assert refused.stderr.strip() == "Error: 1 message(s) of this pool are not sent yet"
        changed = cli_json("pool", "set", *base, "all", "--strategy", "least-loaded")
        assert (changed["name"], changed["kind"], changed["strategy"]) == (
            "all", "account", "least-loaded")  # fmt: skip
        names = [p["name"] for p in cli_json("pool", "list", *base)]
        assert names == ["all", "otp"]
        left = cli_json("pool", "remove-sim", *base, "otp", "--device", str(s.device_id),
                        "--sim", "1")  # fmt: skip
        assert left["sims"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "all"], "Error: Pool name 'all' is reserved"),
        (["create", "Bad Name"], "Error: Invalid pool name 'Bad Name': use 1-40 of a-z, 0-9,"
         " '-' and '_' starting with a letter or digit"),
        (["show", "nope"], "Error: Pool not found"),
        (["add-sim", "all", "--device", "1", "--sim", "0"],
         "Error: Pool 'all' is implicit: its SIMs are those of the account"),
        (["set", "all"], "Error: nothing to change: give --strategy and/or --sticky/--no-sticky"),
    ],
)  # fmt: skip
def test_pool_errors_are_one_line_with_a_non_zero_exit(
    tmp_path: Path, args: list[str], message: str
) -> None:
    db = str(tmp_path / "x.sqlite3")
    cli("account", "create", "--db", db, "--email", "a@example.com", "--password", "password-1")
    result = cli("pool", args[0], "--db", db, "--email", "a@example.com", *args[1:], check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == message and "Traceback" not in result.stderr
