"""API keys (shown once, hashed, revocable, last use, rate limit under concurrency), quotas
(refused sends store nothing, concurrent sends cannot pass a quota together) and Idempotency-Key
(100 concurrent requests with one key store one message set and get one answer)."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from simhive.server.core import security
from tests.server._v1 import NUMBER, V1


def db(v1: V1, sql: str, *params: Any) -> list[Any]:
    with sqlite3.connect(v1.gateway.store.path) as conn:  # type: ignore[attr-defined]
        return conn.execute(sql, params).fetchall()


async def test_a_key_is_shown_once_stored_hashed_and_revocable(v1: V1) -> None:
    made = await v1.ok("POST", "/keys", json={"name": "shop", "scopes": ["send", "read"]})
    secret = made["key"]
    assert secret.startswith("shk_") and len(secret) == 36 and secret.startswith(made["prefix"])
    assert made["scopes"] == ["send", "read"] and made["revoked"] is None
    listed = (await v1.ok("GET", "/keys"))["keys"]
    assert all("key" not in k for k in listed)
    assert [k["name"] for k in listed if k["id"] == made["id"]] == ["shop"]
    [(stored,)] = db(v1, "SELECT key_hash FROM api_keys WHERE id = ?", made["id"])
    assert stored == security.hash_token(secret)
    assert not db(v1, "SELECT 1 FROM api_keys WHERE key_hash = ? OR prefix = ?", secret, secret)
    await v1.ok("GET", "/balance", key=secret)
    [(last_used,)] = db(v1, "SELECT last_used FROM api_keys WHERE id = ?", made["id"])
    assert last_used is not None
    # A live name cannot be taken twice; a revoked key frees it.
    await v1.err("POST", "/keys", "already_exists", json={"name": "shop", "scopes": ["read"]})
    revoked = await v1.ok("DELETE", f"/keys/{made['id']}")
    assert revoked["revoked"] is not None
    await v1.err("GET", "/balance", "invalid_credential", key=secret)
    await v1.err("DELETE", f"/keys/{made['id']}", "not_found")
    await v1.ok("POST", "/keys", json={"name": "shop", "scopes": ["read"]})


async def test_a_key_with_an_smpp_login(v1: V1) -> None:
    made = await v1.ok("POST", "/keys", json={"name": "crm", "scopes": ["send"], "smpp": True,
                                              "smpp_system_id": "crm1"})  # fmt: skip
    password = made["smpp_password"]
    assert made["smpp_system_id"] == "crm1" and len(password) == 8 and password.isalnum()
    [(stored,)] = db(v1, "SELECT smpp_password_hash FROM api_keys WHERE id = ?", made["id"])
    assert stored.startswith("scrypt") and security.verify_password(password, stored)
    listed = (await v1.ok("GET", "/keys"))["keys"]
    assert [k["smpp_system_id"] for k in listed if k["id"] == made["id"]] == ["crm1"]
    assert all("smpp_password" not in k for k in listed)
    plain = await v1.ok("POST", "/keys", json={"name": "web", "scopes": ["read"]})
    assert plain["smpp_system_id"] is None and plain["smpp_password"] is None
    await v1.err(
        "POST",
        "/keys",
        "already_exists",
        json={"name": "x", "scopes": ["send"], "smpp": True, "smpp_system_id": "CRM1"},
    )
    await v1.err(
        "POST",
        "/keys",
        "invalid_input",
        json={"name": "y", "scopes": ["send"], "smpp": True, "smpp_system_id": "a b"},
    )
    await v1.err(
        "POST",
        "/keys",
        "not_found",
        json={"name": "z", "scopes": ["send"], "smpp": True, "smpp_pool": "nope"},
    )


async def test_key_input_is_checked(v1: V1) -> None:
    bodies: list[dict[str, Any]] = [
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["root"]},
        {"name": "", "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "rate_per_minute": 0},
        {"name": "x"},
        {"name": "x", "scopes": "read"},
    ]
    for body in bodies:
        await v1.err("POST", "/keys", "invalid_input", json=body)


async def test_rate_limit_holds_under_concurrency(v1: V1) -> None:
    _, secret = await v1.native.keys.create(v1.account, "slow", ["read"], rate_per_minute=5)
    v1.native.keys.limiter.clock = lambda: 1000.0  # time stands still: no refill during the test
    results = await asyncio.gather(*(v1.call("GET", "/balance", key=secret) for _ in range(30)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 5 + [429] * 25
    refused = next(data for status, data in results if status == 429)
    assert refused["error"]["code"] == "rate_limited"
    assert refused["error"]["details"] == {"limit_per_minute": 5}
    response = await v1.client.get("/api/v1/balance", headers={"Authorization": f"Bearer {secret}"})
    assert response.status == 429 and response.headers["Retry-After"] == "12"
    # Another key is not held back by this one.
    await v1.ok("GET", "/balance", key="read")
    v1.native.keys.limiter.clock = lambda: 1012.0  # one token back after 60 / 5 s
    await v1.ok("GET", "/balance", key=secret)
    await v1.err("GET", "/balance", "rate_limited", key=secret)


async def test_100_concurrent_requests_with_one_idempotency_key(v1: V1) -> None:
    body = {"to": [NUMBER, "+4915700000001", "bad"], "text": "once"}
    headers = {"Idempotency-Key": "order-4711"}
    results = await asyncio.gather(*(
        v1.call("POST", "/messages", key="send", json=body, headers=headers) for _ in range(100)
    ))  # fmt: skip
    assert {status for status, _ in results} == {200}
    answers = [data for _, data in results]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["accepted"] == 2
    assert db(v1, "SELECT COUNT(*) FROM messages") == [(2,)]
    # Later retries too; the same key with another request is refused, nothing stored.
    assert await v1.ok("POST", "/messages", key="send", json=body, headers=headers) == answers[0]
    other = {**body, "text": "twice"}
    await v1.err("POST", "/messages", "idempotency_conflict", key="send", json=other,
                 headers=headers)  # fmt: skip
    await v1.err("POST", "/messages", "invalid_input", key="send", json=body,
                 headers={"Idempotency-Key": "bad key"})  # fmt: skip
    assert db(v1, "SELECT COUNT(*) FROM messages") == [(2,)]


async def test_quota_refuses_and_stores_nothing(v1: V1) -> None:
    await v1.ok("PUT", "/quotas", json={"daily": 3, "monthly": None})
    await v1.send(to=[NUMBER, NUMBER])
    error = await v1.err("POST", "/messages", "quota_exhausted", key="send",
                         json={"to": [NUMBER, NUMBER], "text": "x"})  # fmt: skip
    assert error["details"] == {"quota": "account daily", "limit": 3, "used": 2, "asked": 2}
    assert db(v1, "SELECT COUNT(*) FROM messages") == [(2,)]
    balance = await v1.ok("GET", "/balance", key="read")
    assert balance["account"]["daily"] == {**balance["account"]["daily"], "limit": 3, "used": 2,
                                           "remaining": 1}  # fmt: skip
    assert balance["account"]["monthly"]["limit"] is None
    await v1.send()  # exactly to the limit
    await v1.err("POST", "/messages", "quota_exhausted", key="send",
                 json={"to": [NUMBER], "text": "x"})  # fmt: skip


async def test_key_quota_holds_under_concurrency(v1: V1) -> None:
    _, secret = await v1.native.keys.create(v1.account, "capped", ["send", "read"],
                                            monthly_quota=5)  # fmt: skip
    results = await asyncio.gather(*(
        v1.call("POST", "/messages", key=secret, json={"to": [NUMBER], "text": "x"})
        for _ in range(20)
    ))  # fmt: skip
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 5 + [403] * 15
    assert db(v1, "SELECT COUNT(*) FROM messages") == [(5,)]
    balance = await v1.ok("GET", "/balance", key=secret)
    assert balance["key"]["monthly"] == {**balance["key"]["monthly"], "used": 5, "remaining": 0}
    assert balance["account"]["monthly"]["used"] == 5
    await v1.send()  # the account itself has no quota: other keys still send
