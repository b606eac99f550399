"""Device creation with an enrollment code, the code swap at /agent/v1/enroll (once, before it
expires), and device updates: name, pacing, webhooks (secret shown once), pool seats."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from simhive.agent.enroll import device_block, write_private
from simhive.server.core import enrollment
from simhive.server.core.enrollment import ENROLL_CODE_SECONDS
from tests.server._v1 import V1
from tests.server.test_api_v1_keys import db  # the PostgreSQL rerun points it at its schema

US = 1_000_000


async def enroll(v1: V1, code: Any) -> tuple[int, dict[str, Any]]:
    answer = await v1.client.post("/agent/v1/enroll", json={"code": code})
    return answer.status, await answer.json()


async def test_create_shows_the_token_once_and_a_code_that_works_once(v1: V1) -> None:
    made = await v1.ok("POST", "/devices", key="devices", json={"name": " shop modem "})
    assert made["title"] == "shop modem" and made["connection"] == "never_seen"
    code = made["enrollment"]["code"]
    assert len(code) == 19 and code.count("-") == 3
    assert made["enrollment"]["command"] == (
        f"simhive-agent enroll http://{v1.client.host}:{v1.client.port} {code}")  # fmt: skip
    listed = await v1.ok("GET", "/devices", key="read")
    assert made["token"] not in str(listed)  # shown once only
    # dashes, spaces and case do not matter
    status, got = await enroll(v1, " " + code.lower().replace("-", " ") + " ")
    assert status == 200, got
    assert got == {"device_id": made["id"], "name": "shop modem", "token": made["token"]}
    # the token works for the agent protocol
    hello = await v1.client.post("/agent/v1/hello", json={"agent_version": "t", "sims": []},
                                 headers={"Authorization": f"Bearer {got['token']}"})  # fmt: skip
    assert hello.status == 200, await hello.text()
    status, again = await enroll(v1, code)
    assert (status, again["error"]["code"]) == (401, "unauthorized")
    # the used row keeps no sealed token, and no clear code
    rows = db(v1, "SELECT code_hash, sealed FROM enrollment_codes")
    assert rows and all(sealed is None for _, sealed in rows)
    assert all(made["token"] not in str(r) and code not in str(r) for r in rows)


async def test_a_code_expires_and_junk_is_refused(v1: V1) -> None:
    made = await v1.ok("POST", "/devices", key="devices", json={"name": "late"})
    clock = v1.gateway.clock
    v1.gateway.clock = lambda: clock() + (ENROLL_CODE_SECONDS + 1) * US
    try:
        status, got = await enroll(v1, made["enrollment"]["code"])
    finally:
        v1.gateway.clock = clock
    assert (status, got["error"]["code"]) == (401, "unauthorized")
    assert "expired" in got["error"]["message"]
    assert (await enroll(v1, "AAAA-AAAA-AAAA-AAAA"))[0] == 401
    assert (await enroll(v1, 12))[0] == 400
    assert (await enroll(v1, "x" * 65))[0] == 400
    bad = await v1.client.post("/agent/v1/enroll", data=b"{not json")
    assert bad.status == 400


def test_sealing_needs_the_code() -> None:
    code = "ABCDEFGHJKMNPQRS"
    sealed = enrollment.seal("0123456789abcdef0123456789abcdef", code)
    assert enrollment.unseal(sealed, code) == "0123456789abcdef0123456789abcdef"
    assert enrollment.unseal(sealed, "ABCDEFGHJKMNPQRT") != "0123456789abcdef0123456789abcdef"
    assert enrollment.canonical("abcd efgh-jkmn pqrs") == code
    assert enrollment.canonical("ABCD-EFGH-JKMN-PQR0") is None  # 0 is not in the alphabet


async def test_update_name_pacing_webhooks_and_pools(v1: V1) -> None:
    await v1.ok("POST", "/pools", key="devices", json={"name": "promo"})
    await v1.ok("POST", "/pools", key="devices", json={"name": "otp"})
    dev = v1.device.id
    await v1.ok("PUT", f"/pools/otp/sims/{dev}/1", key="devices", json={})
    got = await v1.ok("PATCH", f"/devices/{dev}", key="devices", json={
        "name": "hall 2",
        "pacing": {"min_interval_seconds": 3, "per_day": None, "per_hour": 50},
        "webhooks": {"status": "https://example.com/status"},
        "pools": [{"pool": "promo", "sim": 0, "weight": 3}, {"pool": "promo", "sim": 1}],
    })  # fmt: skip
    assert got["title"] == "hall 2"
    assert got["pacing"] == {"min_interval_seconds": 3, "per_minute": 6, "per_hour": 50,
                             "per_day": None}  # fmt: skip
    secret = got["webhooks"]["secret"]
    assert got["webhooks"]["status"] == "https://example.com/status" and len(secret) == 64
    promo = await v1.ok("GET", "/pools/promo", key="read")
    assert sorted((s["device_id"], s["sim"], s["weight"]) for s in promo["sims"]) == [
        (dev, 0, 3), (dev, 1, 1)]  # fmt: skip
    assert (await v1.ok("GET", "/pools/otp", key="read"))["sims"] == []  # seats are replaced
    again = await v1.ok("PATCH", f"/devices/{dev}", key="devices",
                        json={"webhooks": {"incoming": "https://example.com/in"}})  # fmt: skip
    assert again["webhooks"]["secret"] is None and again["webhooks"]["secret_set"]
    gone = await v1.ok("PATCH", f"/devices/{dev}", key="devices",
                       json={"webhooks": {"status": "", "incoming": ""}, "pools": []})  # fmt: skip
    assert (gone["webhooks"]["status"], gone["webhooks"]["incoming"]) == (None, None)
    assert (await v1.ok("GET", "/pools/promo", key="read"))["sims"] == []
    for body, field in (({"pacing": {"min_interval_seconds": None}},
                         "pacing.min_interval_seconds"),
                        ({"webhooks": {"status": "ftp://x"}}, None),
                        ({"pools": [{"pool": "all", "sim": 0}]}, "pools")):  # fmt: skip
        err = await v1.err("PATCH", f"/devices/{dev}", "invalid_input", key="devices", json=body)
        assert field is None or err["details"]["field"] == field
    await v1.err("PATCH", f"/devices/{dev}", "not_found", key="devices",
                 json={"pools": [{"pool": "nosuch", "sim": 0}]})  # fmt: skip


def test_the_written_config_is_private_and_checks(tmp_path: Path) -> None:
    from simhive.agent.cli import main

    path = tmp_path / "etc" / "agent.toml"
    token = "0123456789abcdef" * 2
    text = 'server = "http://127.0.0.1:1"\njournal = "j.sqlite3"\n\n' + device_block(
        "hall", token, None, ("/dev/ttyUSB2",), None, None)  # fmt: skip
    write_private(path, text)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    result = CliRunner().invoke(main, ["check-config", str(path)])
    # Valid (exit 1, not 2): the only problem found is that this machine has no such port.
    assert result.exit_code == 1 and token not in result.output, result.output
    problems = [s for s in map(str.strip, result.output.splitlines()) if s.startswith("problem:")]
    assert problems == [line for line in problems if "/dev/ttyUSB2 does not exist" in line]
    assert len(problems) == 1


def test_enroll_errors_are_one_line_with_a_hint(tmp_path: Path) -> None:
    from simhive.agent.cli import main

    for args, words in ((["ftp://x", "CODE"], "not a server URL"),
                        (["http://127.0.0.1:1", "CODE"], "cannot reach")):  # fmt: skip
        result = CliRunner().invoke(main, ["enroll", *args, "--config",
                                           str(tmp_path / "a.toml")])  # fmt: skip
        assert result.exit_code == 1 and words in result.output, result.output
        assert "Traceback" not in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "a.toml").exists()
