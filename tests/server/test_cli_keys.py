"""`simhive-server key ...` and `quota set` as real processes next to a running server: the first
key is made by the CLI and works against the server, secrets never show again, a revoked key is
listed as revoked, and errors are one line (refusing a revoked key: test_api_v1_keys.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from simhive.server.core import security
from tests.server._server import cli, cli_json, server

pytestmark = pytest.mark.integration


def balance(url: str, key: str) -> tuple[int, dict[str, object]]:
    request = Request(f"{url}/api/v1/balance", headers={"Authorization": f"Bearer {key}"})
    try:
        with urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_key_and_quota_commands(tmp_path: Path) -> None:
    with server(tmp_path) as s:
        base = ["--db", str(s.db), "--email", s.email]
        made = cli_json("key", "create", *base, "--name", "reporting", "--scope", "read",
                        "--daily-quota", "10")  # fmt: skip
        secret = made["key"]
        assert made["scopes"] == ["read"] and made["daily_quota"] == 10
        status, data = balance(s.url, secret)
        assert status == 200 and data["key"]["daily"]["limit"] == 10  # type: ignore[index]
        listed = cli("key", "list", *base).stdout
        assert secret not in listed and "reporting" in listed
        with sqlite3.connect(s.db) as conn:
            stored = conn.execute("SELECT key_hash FROM api_keys WHERE id = ?", (made["id"],))
            assert stored.fetchone()[0] == security.hash_token(secret)
        quota = cli_json("quota", "set", *base, "--daily", "500")
        assert quota["account"]["daily"]["limit"] == 500
        assert quota["account"]["monthly"]["limit"] is None
        revoked = cli_json("key", "revoke", *base, str(made["id"]))
        assert revoked["revoked"] is not None
        again = cli("key", "revoke", *base, str(made["id"]), check=False)
        assert (again.returncode, again.stderr.strip()) == (1, "Error: API key not found")
        bad = cli("key", "create", *base, "--name", "x", "--scope", "root", check=False)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        nobody = cli("key", "list", "--db", str(s.db), "--email", "no@example.com", check=False)
        assert (nobody.returncode, nobody.stderr.strip()) == (
            1, "Error: No account with email no@example.com")  # fmt: skip
        [shown] = [k for k in cli_json("key", "list", *base) if k["id"] == made["id"]]
        assert shown["revoked"] == revoked["revoked"]
