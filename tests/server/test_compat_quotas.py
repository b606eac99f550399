"""The account's quotas count sends through the SMSGateway24-compatible API as well as the native
one (server/core/quotas.py): a compat send over a quota is refused in the compat error shape
with nothing stored, an `addalotofsms` batch as a whole, and concurrent sends through both APIs
cannot pass a quota together. tests/store/test_api_v1_pg.py runs these again on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.server._v1 import NUMBER, V1

OTHER = "+4915700000001"


async def compat(v1: V1, method: str, **params: Any) -> dict[str, Any]:
    response = await v1.client.post(f"/getdata/{method}", data={"token": v1.compat_token, **params})
    assert response.status == 200  # the compat API answers errors with HTTP 200 too
    data: dict[str, Any] = await response.json()
    return data


async def addsms(v1: V1, sendto: str = NUMBER, **params: Any) -> dict[str, Any]:
    return await compat(v1, "addsms", sendto=sendto, body="hi", device_id=v1.device.id, **params)


async def batch(v1: V1, numbers: list[str]) -> dict[str, Any]:
    entries = [{"sendto": n, "body": "hi", "device_id": v1.device.id} for n in numbers]
    return await compat(v1, "addalotofsms", datajson=json.dumps({"smsdata": entries}))


async def stored(v1: V1) -> int:
    data = await compat(v1, "getallsms", onlycount=1)
    count: int = data["count"]
    return count


async def used(v1: V1, period: str = "daily") -> int:
    balance = await v1.ok("GET", "/balance", key="read")
    n: int = balance["account"][period]["used"]
    return n


async def test_compat_sends_count_on_the_account_quota_and_are_refused_past_it(v1: V1) -> None:
    await v1.ok("PUT", "/quotas", json={"daily": 4, "monthly": None})
    assert (await addsms(v1, f"{NUMBER},{OTHER}"))["error"] == 0  # two recipients, two messages
    assert await used(v1) == 2
    await v1.send()  # the native API counts on the same meter
    assert await used(v1) == 3
    refused = await addsms(v1, f"{NUMBER},{OTHER}")
    assert refused == {
        "error": 1,
        "message": "The account's daily quota of 4 messages would be passed (3 used, 2 asked);"
        " nothing was stored",
    }
    assert await stored(v1) == 3 and await used(v1) == 3
    assert (await addsms(v1))["error"] == 0  # exactly to the limit
    assert (await addsms(v1))["error"] == 1
    # smstosend (a token, or email + pass) is a send like addsms.
    late = await compat(v1, "smstosend", sendto=NUMBER, body="hi", device_id=v1.device.id)
    assert late["error"] == 1 and "daily quota of 4" in late["message"]
    native = await v1.err("POST", "/messages", "quota_exhausted", key="send",
                          json={"to": [NUMBER], "text": "x"})  # fmt: skip
    assert native["details"] == {"quota": "account daily", "limit": 4, "used": 4, "asked": 1}
    assert await stored(v1) == 4
    # Raised again: compat sends go through at once (the limit is read when the send is stored).
    await v1.ok("PUT", "/quotas", json={"daily": 5, "monthly": None})
    assert (await addsms(v1))["error"] == 0


async def test_an_addalotofsms_batch_over_a_quota_is_refused_whole(v1: V1) -> None:
    await v1.ok("PUT", "/quotas", json={"daily": None, "monthly": 5})
    assert (await addsms(v1, f"{NUMBER},{OTHER}"))["error"] == 0
    refused = await batch(v1, [NUMBER, OTHER, NUMBER, OTHER])  # 2 + 4 would pass 5
    assert refused["error"] == 1
    assert refused["message"].startswith("The account's monthly quota of 5 messages")
    assert await stored(v1) == 2 and await used(v1, "monthly") == 2
    saved = await batch(v1, [NUMBER, OTHER, NUMBER])  # 2 + 3: exactly the quota
    assert saved["error"] == 0 and len(saved["sms_ids"]) == 3
    assert await stored(v1) == 5 and await used(v1, "monthly") == 5


async def test_sends_through_both_apis_at_once_cannot_pass_a_quota(v1: V1) -> None:
    await v1.ok("PUT", "/quotas", json={"daily": 6, "monthly": None})

    async def native() -> bool:
        status, _ = await v1.call("POST", "/messages", key="send",
                                  json={"to": [NUMBER], "text": "x"})  # fmt: skip
        return status == 200

    async def compat_one() -> bool:
        return bool((await addsms(v1))["error"] == 0)

    async def compat_batch() -> bool:
        return bool((await batch(v1, [NUMBER, OTHER]))["error"] == 0)

    sends = [native, compat_one, compat_batch] * 8
    results = await asyncio.gather(*(send() for send in sends))
    sizes = {native: 1, compat_one: 1, compat_batch: 2}
    accepted = sum(sizes[send] for send, ok in zip(sends, results, strict=True) if ok)
    assert accepted <= 6 and await stored(v1) == accepted == await used(v1)
    assert accepted >= 5  # refusals only once the quota is (nearly) used up


async def test_without_a_quota_compat_sends_are_counted_and_never_refused(v1: V1) -> None:
    for _ in range(3):
        assert (await addsms(v1))["error"] == 0
    assert (await batch(v1, [NUMBER, OTHER]))["error"] == 0
    assert await used(v1) == 5 and await used(v1, "monthly") == 5
