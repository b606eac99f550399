"""Device settings an operator changes with `simhive-server device set` reach the agent in hello,
and webhooks configured there are signed with the secret the command printed once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from typing import Any

from click.testing import CliRunner

from simhive.server.cli import main as cli
from tests.server_agent.conftest import Env, Receiver, eventually

DOC_DEFAULT_SIM = {"min_interval_seconds": 10, "per_minute": 6, "per_hour": 100, "per_day": 500}


async def run_cli(*args: str) -> tuple[int, str]:
    # The CLI runs its own event loop (asyncio.run): give it a thread, as a shell would a process.
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args))
    return result.exit_code, result.output


async def test_hello_answers_the_documented_defaults(env: Env) -> None:
    answer = await env.agent("hello", {"sims": [{"slot": 0}]})
    settings = answer["settings"]
    assert settings["delaybetweenrequest"] == 10 and settings["delaybetweeneachsms"] is None
    assert settings["sims"] == {"0": DOC_DEFAULT_SIM, "1": DOC_DEFAULT_SIM}


async def test_device_set_reaches_hello_and_signs_webhooks(env: Env, receiver: Receiver) -> None:
    db = str(env.gw.store.path)  # type: ignore[attr-defined]  # the SQLite store's file
    code, out = await run_cli(
        "device", "set", "--db", db, "--device-id", str(env.device_id),
        "--delaybetweenrequest", "3", "--delaybetweeneachsms", "5", "--sim-min-interval", "0",
        "--sim-per-minute", "none", "--sim-per-hour", "40", "--sim-per-day", "none",
        "--webhook-incoming", receiver.url("/in"),
    )  # fmt: skip
    assert code == 0, out
    shown: dict[str, Any] = json.loads(out)
    secret = shown["webhook_secret"]  # generated because a URL was set and none existed
    assert len(secret) == 64 and shown["webhook_secret_set"] is True
    answer = await env.agent("hello", {"sims": [{"slot": 0}]})
    assert answer["settings"]["delaybetweenrequest"] == 3
    assert answer["settings"]["delaybetweeneachsms"] == 5
    want = {"min_interval_seconds": 0, "per_minute": None, "per_hour": 40, "per_day": None}
    assert answer["settings"]["sims"] == {"0": want, "1": want}
    # the other device keeps its defaults
    other = await env.agent("hello", {"sims": []}, token=env.other_token)
    assert other["settings"]["sims"]["0"] == DOC_DEFAULT_SIM

    msg = {"key": "k1", "sim": 0, "from": "+4917012345", "body": "hi",
           "received_at": "2026-11-22T04:34:05+00:00"}  # fmt: skip
    await env.agent("incoming", {"messages": [msg]})
    [got] = await eventually(lambda: _one(receiver.ok("/in")), "incoming webhook")
    mac = hmac.new(
        secret.encode(), got.headers["X-Simhive-Timestamp"].encode() + b"." + got.body,
        hashlib.sha256,
    )  # fmt: skip
    assert got.headers["X-Simhive-Signature"] == "v1=" + mac.hexdigest()

    # a second `set` keeps the secret (not printed again) unless asked for a new one
    code, out = await run_cli("device", "set", "--db", db, "--device-id", str(env.device_id),
                              "--webhook-status", receiver.url("/st"))  # fmt: skip
    assert code == 0 and "webhook_secret" not in json.loads(out), out
    await eventually(lambda: _delivered(env), "outbox row marked delivered")
    code, out = await run_cli("device", "webhooks", "--db", db)
    assert code == 0, out
    rows = json.loads(out)
    assert [(r["kind"], r["state"]) for r in rows] == [("incoming", "delivered")]


async def test_device_set_refuses_bad_values(env: Env) -> None:
    db = str(env.gw.store.path)  # type: ignore[attr-defined]  # the SQLite store's file
    base = ["device", "set", "--db", db, "--device-id", str(env.device_id)]
    for extra, needle in (
        (["--webhook-status", "ftp://example.com/x"], "http:// or https://"),
        (["--webhook-incoming", "http://"], "http:// or https://"),
        (["--sim-per-day", "lots"], "whole number or 'none'"),
        (["--delaybetweenrequest", "0"], "0"),
        (["--webhook-secret", "short"], "at least 16"),
    ):
        code, out = await run_cli(*base, *extra)
        assert code != 0 and needle in out, (extra, out)
    code, out = await run_cli("device", "set", "--db", db, "--device-id", "999")
    assert code != 0 and "no device 999" in out
    settings = await env.gw.store.device_agent_settings(env.device_id)
    assert settings is not None and settings.webhook_status is None  # nothing was changed


async def _one(items: list[Any]) -> list[Any] | None:
    return list(items) if items else None


async def _delivered(env: Env) -> bool:
    return [r["state"] for r in await env.webhooks()] == ["delivered"]


async def test_status_events_are_kept_and_shown_by_device_events(env: Env) -> None:
    events = [
        {"at": "2026-11-22T04:34:05+00:00", "kind": "modem", "state": "disconnected",
         "reason": "port closed"},
        {"at": "not a time", "kind": "sim", "state": "quarantined", "reason": "x" * 5000,
         "slot": 1},
        {"kind": 5, "state": None, "slot": True},
    ]  # fmt: skip
    assert await env.agent("status", {"events": events}) == {"ok": True}
    db = str(env.gw.store.path)  # type: ignore[attr-defined]  # the SQLite store's file
    code, out = await run_cli("device", "events", "--db", db, "--device-id", str(env.device_id))
    assert code == 0, out
    shown = json.loads(out)
    assert shown[0] == {"at": "2026-11-22T04:34:05+00:00", "kind": "modem",
                        "state": "disconnected", "reason": "port closed", "slot": None}  # fmt: skip
    assert (shown[1]["kind"], shown[1]["slot"], len(shown[1]["reason"])) == ("sim", 1, 300)
    assert shown[1]["at"] is not None  # an unreadable time becomes the receive time
    assert (shown[2]["kind"], shown[2]["state"], shown[2]["slot"]) == ("unknown", "", None)
    # the other device's events are its own
    code, out = await run_cli("device", "events", "--db", db, "--device-id",
                              str(env.other_device_id))  # fmt: skip
    assert code == 0 and json.loads(out) == []
