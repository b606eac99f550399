"""OTP-confirmed device delete end to end (real server, emulator, agent): the account's number
is an emulated SIM; the codes go out over the air through the account's own gateway and arrive
there as SMS (the agent hands them back as incoming SMS, where the test reads them). Wrong codes
lock the delete; after the lock a new code deletes the device, whose token then stops working."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from tests.e2e.conftest import GatewayFactory
from tests.support.stack import FAST_PACING, GatewayStack, wait_until

pytestmark = pytest.mark.integration


def call(stack: GatewayStack, key: str, method: str, path: str, body: Any = None
         ) -> tuple[int, Any]:  # fmt: skip
    answer = requests.request(method, f"{stack.url}/api/v1{path}", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    return answer.status_code, answer.json()


def ok(stack: GatewayStack, key: str, method: str, path: str, body: Any = None) -> Any:
    status, data = call(stack, key, method, path, body)
    assert status in (200, 201), data
    return data


def code_on_the_phone(stack: GatewayStack, key: str, number: str, seen: set[int]) -> str:
    """The newest code SMS that reached `number`: as the emulator saw it go to that number, and
    as it came in on that SIM (the agent's incoming SMS)."""

    def probe() -> str | None:
        for m in ok(stack, key, "GET", "/incoming")["messages"]:
            found = re.search(r"simhive code (\d{6}) ", m["text"])
            if found and m["id"] not in seen:
                seen.add(m["id"])
                return found.group(1)
        return None

    try:
        code = wait_until(probe, 90, f"a code SMS on {number}", 0.5)
    except AssertionError:
        raise AssertionError(stack.logs()) from None
    on_air = [r for r in stack.submitted() if r["to"] == number and code in str(r["text"])]
    assert len(on_air) == 1, on_air
    return code


def test_a_code_sent_to_the_owners_phone_deletes_the_device(gateway: GatewayFactory) -> None:
    stack = gateway(modems=2, device_settings=FAST_PACING)
    key = str(stack.cli("key", "create", "--email", stack.email, "--name", "e2e",
                        "--scope", "admin")["key"])  # fmt: skip
    owner = stack.devices[1].number(0)  # the owner's phone: a SIM of the second modem
    seen: set[int] = set()
    made = ok(stack, key, "PUT", "/account/phone", {"number": owner})
    assert made["number"] == owner and not made["verified"]
    code = code_on_the_phone(stack, key, owner, seen)
    assert ok(stack, key, "POST", "/account/phone/verify", {"code": code})["verified"]

    doomed = stack.devices[0].device_id
    ok(stack, key, "POST", f"/devices/{doomed}/otp", {"action": "delete"})
    code = code_on_the_phone(stack, key, owner, seen)
    wrong = "000000" if code != "000000" else "111111"
    answers = [call(stack, key, "POST", f"/devices/{doomed}/delete", {"otp": wrong})
               for _ in range(5)]  # fmt: skip
    assert [d["error"]["code"] for _, d in answers] == ["otp_invalid"] * 4 + ["otp_locked"]
    status, data = call(stack, key, "POST", f"/devices/{doomed}/delete", {"otp": code})
    assert status == 429 and re.search(r"try again in \d+ s", data["error"]["message"]), data
    assert ok(stack, key, "GET", f"/devices/{doomed}")["id"] == doomed  # the lock held

    # The lock lasts 10 minutes: the second device asks for its own delete code meanwhile,
    # which shows the right code deletes (a code is per device and action).
    spare = stack.devices[1].device_id
    ok(stack, key, "POST", f"/devices/{spare}/otp", {"action": "delete"})
    code = code_on_the_phone(stack, key, owner, seen)
    assert ok(stack, key, "POST", f"/devices/{spare}/delete", {"otp": code}) == {"deleted": spare}
    status, data = call(stack, key, "GET", f"/devices/{spare}")
    assert (status, data["error"]["code"]) == (404, "not_found")
    hello = requests.post(f"{stack.url}/agent/v1/hello", json={"agent_version": "t", "sims": []},
                          headers={"Authorization": f"Bearer {stack.devices[1].token}"},
                          timeout=30)  # fmt: skip
    assert hello.status_code == 401  # its agent is shut out
