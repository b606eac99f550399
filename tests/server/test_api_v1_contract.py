"""Contract tests for every route of /api/v1, generated from the route declarations: a key
without the route's scope is refused (403 scope_denied), a key of another account never reaches
this account's records (404 not_found), and device tokens, compat account tokens, unknown keys
and no key at all are refused (401). A new route gets these tests by being declared."""

from __future__ import annotations

from typing import Any

import pytest

from simhive.server.api.v1.declare import Route
from simhive.server.api.v1.routes import ROUTES
from simhive.server.core.models import IncomingMessage
from simhive.server.core.native_models import SCOPES
from tests.server._v1 import NUMBER, V1
from tests.server._v1_more import more_bodies, more_path, more_records, more_witness


async def records(env: V1, route: Route) -> dict[str, Any]:
    """One record of each kind in the account, for routes that name one."""
    sent = await env.send(device_id=env.device.id)
    await env.ok("POST", "/pools", key="devices", json={"name": "shop"})
    await env.ok("PUT", f"/pools/shop/sims/{env.device.id}/0", key="devices", json={})
    [(_, incoming_id)] = await env.gateway.store.store_incoming(
        env.account.id, env.device.id, [IncomingMessage("k1", 0, NUMBER, "hello")], 1
    )
    spare = await env.ok("POST", "/keys", key="admin", json={"name": "spare", "scopes": ["read"]})
    template = await env.ok("POST", "/templates", key="send",
                            json={"name": "otp", "body": "Code {code}"})  # fmt: skip
    group = await env.ok("POST", "/groups", key="send", json={"name": "club"})
    contact = await env.ok("POST", f"/groups/{group['id']}/contacts", key="send",
                           json={"phone": NUMBER})  # fmt: skip
    return {"message": sent["messages"][0]["id"], "incoming": incoming_id, "key": spare["id"],
            "template": template["id"], "group": group["id"], "contact": contact["id"],
            **await more_records(env, route.path)}  # fmt: skip


def request(route: Route, env: V1, ids: dict[str, Any]) -> tuple[str, Any]:
    """A valid request for the route: its path with real ids, and a body."""
    path = route.path
    record = {
        "/keys/{id}": ids["key"],
        "/messages/{id}": ids["message"],
        "/messages/{id}/cancel": ids["message"],
        "/incoming/{id}": ids["incoming"],
        "/devices/{id}": env.device.id,
        "/templates/{id}": ids["template"],
    }.get(path)
    if path.startswith("/groups/{id}"):
        record = ids["group"]
        path = path.replace("{contact_id}", str(ids["contact"]))
    if record is not None:
        path = path.replace("{id}", str(record))
    path = more_path(path, ids)  # campaigns, device operations (tests/server/_v1_more.py)
    path = path.replace("{name}", "shop").replace("{device_id}", str(env.device.id))
    path = path.replace("{sim}", "0")
    bodies: dict[str, Any] = {
        "createKey": {"name": "another", "scopes": ["send"]},
        "sendMessages": {"to": [NUMBER], "text": "hi"},
        "setQuotas": {"daily": None, "monthly": None},
        "createPool": {"name": "another"},
        "updatePool": {"sticky": True},
        "setPoolSim": {"weight": 2},
        "createTemplate": {"name": "welcome", "body": "Hello {name}"},
        "updateTemplate": {"body": "Your code: {code}"},
        "createGroup": {"name": "friends"},
        "renameGroup": {"name": "family"},
        "addContact": {"phone": "+4915700000002", "name": "Bob"},
        "importContacts": {"csv": "phone,name\n+4915700000003,Eve\n"},
        **more_bodies(ids),
    }
    if route.operation_id == "sendByGet":
        path += "?to=%2B4915752982212&text=hi"
    return path, bodies.get(route.operation_id)


def without(scope: str) -> str:
    """A key whose scopes do not cover `scope` (admin covers all, so never admin)."""
    return next(s for s in SCOPES if s not in (scope, "admin"))


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.operation_id)
async def test_route_refuses_a_key_without_its_scope(v1: V1, route: Route) -> None:
    ids = await records(v1, route)
    path, body = request(route, v1, ids)
    error = await v1.err(route.method, path, "scope_denied", key=without(route.scope), json=body)
    assert error["details"]["needed"] == route.scope


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.operation_id)
async def test_route_works_with_its_scope_and_with_admin(v1: V1, route: Route) -> None:
    ids = await records(v1, route)
    path, body = request(route, v1, ids)
    if route.operation_id == "sendByGet":
        _, secret = await v1.native.keys.create(v1.account, "url", ["send"], allow_get_send=True)
        v1.keys["send"] = secret
    status, _ = await v1.call(route.method, path, key=route.scope, json=body)
    assert status == route.status
    # admin holds every scope (writes would not repeat cleanly; GET send needs its own flag)
    if route.method == "GET" and not route.key_in_query:
        status, _ = await v1.call(route.method, path, key="admin", json=body)
        assert status == route.status


def witness(route: Route, ids: dict[str, Any]) -> str:
    """A GET that shows the record a refused write would have changed."""
    if route.path.startswith("/keys"):
        return "/keys"
    if route.path.startswith("/messages"):
        return f"/messages/{ids['message']}"
    if route.path.startswith("/templates"):
        return f"/templates/{ids['template']}"
    if route.path.startswith("/groups"):
        return f"/groups/{ids['group']}/contacts"
    return more_witness(route.path, ids) or "/pools/shop"


@pytest.mark.parametrize("route", [r for r in ROUTES if r.owned], ids=lambda r: r.operation_id)
async def test_route_hides_the_records_of_other_accounts(v1: V1, route: Route) -> None:
    ids = await records(v1, route)
    path, body = request(route, v1, ids)
    before = await v1.ok("GET", witness(route, ids))
    # A group that is not the caller's is group_not_found (Onfon's 028), like one that is none.
    code = "group_not_found" if route.path.startswith("/groups") else "not_found"
    if route.operation_id == "removeContact":
        code = "not_found"  # the contact is looked up within the caller's account
    await v1.err(route.method, path, code, key=v1.other_key, json=body)
    # ... and the record is untouched: the owner finds it as it was.
    assert await v1.ok("GET", witness(route, ids)) == before


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.operation_id)
async def test_route_refuses_tokens_that_are_not_api_keys(v1: V1, route: Route) -> None:
    ids = await records(v1, route)
    path, body = request(route, v1, ids)
    await v1.err(route.method, path, "device_token_refused", key=v1.device_token, json=body)
    await v1.err(route.method, path, "device_token_refused", key=v1.compat_token, json=body)
    await v1.err(route.method, path, "invalid_credential", key="shk_" + "0" * 32, json=body)
    await v1.err(route.method, path, "invalid_credential", key=None, json=body)


def test_every_route_is_declared_with_a_known_scope() -> None:
    assert {r.scope for r in ROUTES} <= set(SCOPES)
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
    assert len({r.operation_id for r in ROUTES}) == len(ROUTES)
