"""One-time codes by SMS (server/core/otp.py): the account's phone is verified by a code sent to
it; deleting a device or resetting its token needs a code sent to that phone; codes are single
use, valid 5 minutes, one per 10 minutes, and wrong ones lock the action ("try again in N s")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from click.testing import CliRunner

from simhive.server.cli import main as server_cli
from simhive.server.core.otp import LOCK_SECONDS, MAX_TRIES, OTP_SECONDS, RESEND_SECONDS
from tests.server._v1 import V1
from tests.server._v1_more import PHONE, code_of
from tests.server.test_api_v1_keys import db  # the PostgreSQL rerun points it at its schema

US = 1_000_000


def shift(v1: V1, seconds: float) -> Callable[[], int]:
    """Move the server's clock `seconds` ahead (of the real one); returns the real clock."""
    real = v1.gateway.clock
    v1.gateway.clock = lambda: real() + int(seconds * US)
    return real


async def verified(v1: V1) -> None:
    made = await v1.ok("PUT", "/account/phone", key="admin", json={"number": PHONE})
    await v1.ok("POST", "/account/phone/verify", key="admin",
                json={"code": await code_of(v1, made["code"])})  # fmt: skip


async def hello(v1: V1, token: str) -> int:
    answer = await v1.client.post("/agent/v1/hello", json={"agent_version": "t", "sims": []},
                                  headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    return answer.status


async def test_without_a_verified_phone_nothing_is_sent_and_nothing_deleted(v1: V1) -> None:
    dev = f"/devices/{v1.device.id}"
    err = await v1.err("POST", f"{dev}/otp", "phone_not_verified", key="devices",
                       json={"action": "delete"})  # fmt: skip
    assert "admin CLI" in err["message"]
    await v1.err("POST", f"{dev}/delete", "phone_not_verified", key="devices",
                 json={"otp": "123456"})  # fmt: skip
    made = await v1.ok("PUT", "/account/phone", key="admin", json={"number": "0049 157 52982290"})
    assert (made["number"], made["verified"]) == (PHONE, False)  # not yet: a code went out
    await v1.err("POST", f"{dev}/otp", "phone_not_verified", key="devices",
                 json={"action": "delete"})  # fmt: skip
    await v1.err("PUT", "/account/phone", "invalid_numbers", key="admin", json={"number": "12"})
    assert (await v1.ok("GET", f"{dev}", key="read"))["id"] == v1.device.id


async def test_the_phone_is_verified_by_the_code_sent_to_it(v1: V1) -> None:
    made = await v1.ok("PUT", "/account/phone", key="admin", json={"number": PHONE})
    sms = await v1.ok("GET", f"/messages/{made['code']['sms_id']}", key="read")
    assert sms["to"] == PHONE and sms["priority"] == "high"
    assert made["code"]["sent_to"] == "+49********290"
    code = await code_of(v1, made["code"])
    wrong = "000000" if code != "000000" else "111111"
    err = await v1.err("POST", "/account/phone/verify", "otp_invalid", key="admin",
                       json={"code": wrong})  # fmt: skip
    assert err["details"]["tries_left"] == MAX_TRIES - 1
    got = await v1.ok("POST", "/account/phone/verify", key="admin", json={"code": code})
    assert got["verified"] and got["verified_at"] is not None
    await v1.err("POST", "/account/phone/verify", "otp_not_requested", key="admin",
                 json={"code": code})  # a code works once  # fmt: skip
    assert (await v1.ok("GET", "/account/phone", key="admin"))["verified"]
    stored = db(v1, "SELECT code_hash FROM otp_codes")
    assert all(code not in str(row) for row in stored)  # only salted digests are kept


async def test_wrong_codes_lock_and_a_right_code_deletes(v1: V1) -> None:
    await verified(v1)
    dev = f"/devices/{v1.device.id}"
    sent = await v1.ok("POST", f"{dev}/otp", key="devices", json={"action": "delete"})
    code = await code_of(v1, sent)
    err = await v1.err("POST", f"{dev}/otp", "rate_limited", key="devices",
                       json={"action": "delete"})  # one code per 10 minutes  # fmt: skip
    assert "10 min" in err["message"]
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(MAX_TRIES - 1):
        await v1.err("POST", f"{dev}/delete", "otp_invalid", key="devices", json={"otp": wrong})
    status, data = await v1.call("POST", f"{dev}/delete", key="devices", json={"otp": wrong})
    assert (status, data["error"]["code"]) == (429, "otp_locked")
    assert f"try again in {LOCK_SECONDS} s" in data["error"]["message"]
    # locked: even the right code is refused, with the time left
    err = await v1.err("POST", f"{dev}/delete", "otp_locked", key="devices", json={"otp": code})
    assert "try again in" in err["message"] and err["details"]["retry_after_seconds"] > 0
    assert (await v1.ok("GET", dev, key="read"))["id"] == v1.device.id
    shift(v1, LOCK_SECONDS + 1)
    # the lock is over, the locked code is void: a new one is needed
    await v1.err("POST", f"{dev}/delete", "otp_not_requested", key="devices", json={"otp": code})
    sent = await v1.ok("POST", f"{dev}/otp", key="devices", json={"action": "delete"})
    assert await hello(v1, v1.device_token) == 200  # the app now holds the token in its cache
    assert await v1.ok(
        "POST", f"{dev}/delete", key="devices", json={"otp": await code_of(v1, sent)}
    ) == {"deleted": v1.device.id}
    await v1.err("GET", dev, "not_found", key="read")
    assert v1.device.id not in [d["id"] for d in (await v1.ok("GET", "/devices"))["devices"]]
    assert await hello(v1, v1.device_token) == 401  # its token stopped working


async def test_concurrent_wrong_guesses_cannot_pass_the_limit(v1: V1) -> None:
    await verified(v1)
    dev = f"/devices/{v1.device.id}"
    sent = await v1.ok("POST", f"{dev}/otp", key="devices", json={"action": "delete"})
    code = await code_of(v1, sent)
    guesses = [f"{n:06d}" for n in range(40) if f"{n:06d}" != code][:30]
    answers = await asyncio.gather(*(v1.call("POST", f"{dev}/delete", key="devices",
                                             json={"otp": g}) for g in guesses))  # fmt: skip
    codes = [data["error"]["code"] for _, data in answers]
    assert codes.count("otp_invalid") == MAX_TRIES - 1
    assert codes.count("otp_locked") == len(guesses) - (MAX_TRIES - 1)
    await v1.err("POST", f"{dev}/delete", "otp_locked", key="devices", json={"otp": code})


async def test_codes_expire_and_a_reset_gives_a_new_token(v1: V1) -> None:
    await verified(v1)
    dev = f"/devices/{v1.device.id}"
    sent = await v1.ok("POST", f"{dev}/otp", key="devices", json={"action": "reset_token"})
    real = shift(v1, OTP_SECONDS + 1)
    err = await v1.err("POST", f"{dev}/reset-token", "otp_invalid", key="devices",
                       json={"otp": await code_of(v1, sent)})  # fmt: skip
    assert "expired" in err["message"]
    v1.gateway.clock = real
    shift(v1, RESEND_SECONDS + 1)
    sent = await v1.ok("POST", f"{dev}/otp", key="devices", json={"action": "reset_token"})
    # a code is for one action: the reset's code does not delete
    await v1.err("POST", f"{dev}/delete", "otp_not_requested", key="devices",
                 json={"otp": await code_of(v1, sent)})  # fmt: skip
    assert await hello(v1, v1.device_token) == 200  # the app now holds the token in its cache
    got = await v1.ok("POST", f"{dev}/reset-token", key="devices",
                      json={"otp": await code_of(v1, sent)})  # fmt: skip
    assert got["id"] == v1.device.id and got["token"] != v1.device_token
    assert await hello(v1, v1.device_token) == 401
    assert await hello(v1, got["token"]) == 200


async def test_the_admin_cli_deletes_without_a_code(v1: V1) -> None:
    # The CLI is the core's `device delete` (server/cli_delete.py): the same delete as the API's.
    db = str(v1.gateway.store.path)  # type: ignore[attr-defined]
    sms_id = (await v1.send(device_id=v1.device.id))["messages"][0]["id"]
    args = ["device", "delete", "--device-id", str(v1.device.id), "--db", db, "--yes"]
    result = await asyncio.to_thread(CliRunner().invoke, server_cli, args)
    assert result.exit_code == 0, result.output
    assert '"unsent_messages": 1' in result.output
    await v1.err("GET", f"/devices/{v1.device.id}", "not_found", key="read")
    await v1.err("GET", f"/messages/{sms_id}", "not_found", key="read")
    again = await asyncio.to_thread(CliRunner().invoke, server_cli, args)
    assert again.exit_code == 1 and "No device" in again.output
