"""Records of groups, contacts and campaigns (and bodies of the device routes) for the
declaration-driven contract tests (test_api_v1_contract.py): one of each kind, paths filled with
their ids, valid bodies."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.server._v1 import NUMBER, V1

LATER = (datetime.now(UTC) + timedelta(days=300)).isoformat()


async def group_records(env: V1, path: str) -> dict[str, Any]:
    """The records `path` needs (each kind costs several writes: made only when needed)."""
    out: dict[str, Any] = {}
    if path.startswith(("/account", "/devices/{id}/")):
        out = await otp_records(env)
    if not path.startswith(("/groups", "/campaigns")):
        return out
    group = await env.ok("POST", "/groups", key="send", json={"name": "club"})
    contact = await env.ok("POST", f"/groups/{group['id']}/contacts", key="send",
                           json={"number": NUMBER, "name": "Ann"})  # fmt: skip
    # Scheduled far ahead, so the runner leaves them be: one to pause or cancel, one paused.
    body = {"to": [NUMBER], "text": "hi", "send_at": LATER}
    waiting = await env.ok("POST", "/campaigns", key="send", json={"name": "c1", **body})
    paused = await env.ok("POST", "/campaigns", key="send", json={"name": "c2", **body})
    await env.ok("POST", f"/campaigns/{paused['id']}/pause", key="send")
    return {"group": group["id"], "contact": contact["id"], "campaign": waiting["id"],
            "paused_campaign": paused["id"], **out}  # fmt: skip


def group_path(path: str, ids: dict[str, Any]) -> str:
    if path.startswith("/groups/{id}"):
        path = path.replace("{id}", str(ids["group"]))
        return path.replace("{contact_id}", str(ids["contact"]))
    if path == "/devices/{id}/otp":  # the main device has its codes sent already
        return path.replace("{id}", str(ids["spare_device"]))
    if path.startswith("/devices/{id}/"):
        return path.replace("{id}", str(ids["device"]))
    if path == "/campaigns/{id}/resume":
        return path.replace("{id}", str(ids["paused_campaign"]))
    if path.startswith("/campaigns/{id}"):
        return path.replace("{id}", str(ids["campaign"]))
    return path


GROUP_BODIES: dict[str, Any] = {
    "createGroup": {"name": "another"},
    "renameGroup": {"name": "renamed"},
    "createContact": {"number": "+4915752982299", "name": "Bob"},
    "updateContact": {"name": "Ann B."},
    "importContacts": {"csv": "number,name\n+4915752982298,Cy\n"},
    "createCampaign": {"name": "another", "groups": [], "text": "hi"},
    "createDevice": {"name": "new modem"},
    "updateDevice": {"name": "renamed modem"},
}


def group_bodies(ids: dict[str, Any]) -> dict[str, Any]:
    out = dict(GROUP_BODIES)
    if "group" in ids:
        out["createCampaign"] = {"name": "another", "groups": [ids["group"]], "text": "hi"}
    if "phone_code" in ids:
        out.update(otp_bodies(ids))
    return out


def missing_code(path: str) -> str:
    """What another account gets for this account's record."""
    return "group_not_found" if path.startswith("/groups/") else "not_found"


def readable(path: str) -> str:
    """The GET path that shows the record a write route changed."""
    for action in ("/cancel", "/pause", "/resume", "/import", "/otp", "/delete", "/reset-token"):
        path = path.removesuffix(action)
    return path


PHONE, OTHER_PHONE = "+4915752982290", "+4915752982291"
CODE_RE = re.compile(r"simhive code (\d{6}) ")


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
            "phone_code": await code_of(env, again["code"]), "spare_device": spare["id"],
            "device": env.device.id}  # fmt: skip


def otp_bodies(ids: dict[str, Any]) -> dict[str, Any]:
    return {"setPhone": {"number": OTHER_PHONE}, "verifyPhone": {"code": ids["phone_code"]},
            "requestDeviceCode": {"action": "delete"}, "deleteDevice": {"otp": ids["delete_code"]},
            "resetDeviceToken": {"otp": ids["reset_code"]}}  # fmt: skip
