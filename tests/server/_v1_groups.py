"""Records of groups, contacts and campaigns (and bodies of the device routes) for the
declaration-driven contract tests (test_api_v1_contract.py): one of each kind, paths filled with
their ids, valid bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.server._v1 import NUMBER, V1

LATER = (datetime.now(UTC) + timedelta(days=300)).isoformat()


async def group_records(env: V1) -> dict[str, Any]:
    group = await env.ok("POST", "/groups", key="send", json={"name": "club"})
    contact = await env.ok("POST", f"/groups/{group['id']}/contacts", key="send",
                           json={"number": NUMBER, "name": "Ann"})  # fmt: skip
    # Scheduled far ahead, so the runner leaves them be: one to pause or cancel, one paused.
    body = {"to": [NUMBER], "text": "hi", "send_at": LATER}
    waiting = await env.ok("POST", "/campaigns", key="send", json={"name": "c1", **body})
    paused = await env.ok("POST", "/campaigns", key="send", json={"name": "c2", **body})
    await env.ok("POST", f"/campaigns/{paused['id']}/pause", key="send")
    return {"group": group["id"], "contact": contact["id"], "campaign": waiting["id"],
            "paused_campaign": paused["id"]}  # fmt: skip


def group_path(path: str, ids: dict[str, Any]) -> str:
    if path.startswith("/groups/{id}"):
        path = path.replace("{id}", str(ids["group"]))
        return path.replace("{contact_id}", str(ids["contact"]))
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
    return {**GROUP_BODIES, "createCampaign": {"name": "another", "groups": [ids["group"]],
                                               "text": "hi"}}  # fmt: skip


def missing_code(path: str) -> str:
    """What another account gets for this account's record."""
    return "group_not_found" if path.startswith("/groups/") else "not_found"


def readable(path: str) -> str:
    """The GET path that shows the record a write route changed."""
    for action in ("/cancel", "/pause", "/resume", "/import"):
        path = path.removesuffix(action)
    return path
