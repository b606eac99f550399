"""Records of campaigns and of the device operations (create, update, one-time codes) for the
declaration-driven contract tests (test_api_v1_contract.py): what a route needs, made only when
it is needed (each kind costs several writes), paths filled with their ids, valid bodies."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.server._v1 import NUMBER, V1

LATER = (datetime.now(UTC) + timedelta(days=300)).isoformat()
PHONE, OTHER_PHONE = "+4915752982290", "+4915752982291"
CODE_RE = re.compile(r"simhive code (\d{6}) ")


async def more_records(env: V1, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {"device": env.device.id}
    if path.startswith(("/account", "/devices/{id}/")):
        out.update(await otp_records(env))
    if path.startswith("/campaigns"):
        # Scheduled far ahead, so the runner leaves them be: one to pause or cancel, one paused.
        body = {"to": [NUMBER], "text": "hi", "send_at": LATER}
        waiting = await env.ok("POST", "/campaigns", key="send", json={"name": "c1", **body})
        paused = await env.ok("POST", "/campaigns", key="send", json={"name": "c2", **body})
        await env.ok("POST", f"/campaigns/{paused['id']}/pause", key="send")
        out.update(campaign=waiting["id"], paused_campaign=paused["id"])
    return out


def more_path(path: str, ids: dict[str, Any]) -> str:
    if path == "/devices/{id}/otp":  # the main device has its codes sent already
        return path.replace("{id}", str(ids["spare_device"]))
    if path.startswith("/devices/{id}/"):
        return path.replace("{id}", str(ids["device"]))
    if path == "/campaigns/{id}/resume":
        return path.replace("{id}", str(ids["paused_campaign"]))
    if path.startswith("/campaigns/{id}"):
        return path.replace("{id}", str(ids["campaign"]))
    return path


def more_bodies(ids: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "createCampaign": {"name": "another", "groups": [ids["group"]], "text": "hi"},
        "createDevice": {"name": "new modem"},
        "updateDevice": {"name": "renamed modem"},
        "setWebhooks": {"status": "https://example.com/hook"},
    }
    if "phone_code" in ids:
        out.update(setPhone={"number": OTHER_PHONE}, verifyPhone={"code": ids["phone_code"]},
                   requestDeviceCode={"action": "delete"},
                   deleteDevice={"otp": ids["delete_code"]},
                   resetDeviceToken={"otp": ids["reset_code"]})  # fmt: skip
    return out


def more_witness(path: str, ids: dict[str, Any]) -> str | None:
    """A GET that shows the record a refused write of another account would have changed."""
    if path.startswith("/campaigns/{id}"):
        return more_path(path, ids).split("/pause")[0].split("/resume")[0].split("/cancel")[0]
    if path.startswith("/devices/{id}"):
        return f"/devices/{ids['spare_device'] if path.endswith('/otp') else ids['device']}"
    return None


async def code_of(env: V1, sent: dict[str, Any]) -> str:
    """The code an SMS carries, read from the message the server stored to send it."""
    message = await env.ok("GET", f"/messages/{sent['sms_id']}", key="admin")
    found = CODE_RE.search(message["text"])
    assert found is not None, message
    return found.group(1)


async def otp_records(env: V1) -> dict[str, Any]:
    """A verified phone, codes sent to delete the device and reset its token, a second code for
    the phone pending (for verifyPhone), and a spare device to ask a code for."""
    made = await env.ok("PUT", "/account/phone", key="admin", json={"number": PHONE})
    code = await code_of(env, made["code"])
    await env.ok("POST", "/account/phone/verify", key="admin", json={"code": code})
    device = f"/devices/{env.device.id}"
    delete = await env.ok("POST", f"{device}/otp", key="devices", json={"action": "delete"})
    reset = await env.ok("POST", f"{device}/otp", key="devices", json={"action": "reset_token"})
    again = await env.ok("PUT", "/account/phone", key="admin", json={"number": PHONE})
    spare = await env.ok("POST", "/devices", key="devices", json={"name": "spare"})
    return {"delete_code": await code_of(env, delete), "reset_code": await code_of(env, reset),
            "phone_code": await code_of(env, again["code"]),
            "spare_device": spare["id"]}  # fmt: skip
