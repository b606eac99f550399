"""A device deleted by another process (another server on the same database, or the admin
CLI) while this process still holds its token in its device-token cache
(limits.TOKEN_CACHE_SECONDS): a request that would write rows of the device is refused with 401
in the protocol's error shape (it was a 500, the store refusing rows of a device that is gone);
one that only reads or matches nothing answers as for any device with nothing to do, and after
the window every request is a 401 (tests/server_agent/test_delete.py)."""

from __future__ import annotations

from typing import Any

import pytest

from simhive.server.api.agent import AGENT
from tests.server_agent.conftest import HELLO, Env, Servers

pytestmark = pytest.mark.integration

SIMS = [{"slot": 0, "ready": True, "room": 5, "pool_room": 5}]
INCOMING = {"key": "k-deleted", "sim": 0, "from": "+4917012345", "body": "Hello",
            "received_at": "2026-11-22T04:34:05+00:00", "parts": 1}  # fmt: skip
# (route, body, status within the window): 401 where the store refuses the gone device's rows;
# 200 where nothing of the device is written (an empty pull, nothing to commit or to report).
REQUESTS: list[tuple[str, dict[str, Any], int]] = [
    ("hello", HELLO, 401),
    ("pull", {"wait": 0, "sims": SIMS}, 401),
    ("release", {"lease_id": "x", "ids": [1]}, 401),
    ("incoming", {"messages": [INCOMING]}, 401),
    ("status", {"sims": HELLO["sims"], "events": []}, 401),
    ("pull", {"wait": 0}, 200),
    ("commit", {"lease_id": "x", "ids": [1]}, 200),
    ("report", {"events": [{"event_id": "1:sent", "sms_id": 1, "type": "sent", "sim": 0}]}, 200),
]


@pytest.mark.parametrize(("route", "body", "status"), REQUESTS,
                         ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(REQUESTS)])  # fmt: skip
async def test_a_device_deleted_elsewhere_is_never_a_500_within_the_cache_window(
    servers: Servers, route: str, body: dict[str, Any], status: int
) -> None:
    one: Env = await servers.start()
    two: Env = await servers.start()  # a second server process on the same database
    await two.agent("hello", HELLO)  # two caches the device's token
    service = two.app[AGENT]
    frozen = service.monotonic()
    service.monotonic = lambda: frozen  # still inside the cache window for the whole test
    await one.gw.store.delete_device(one.device_id, 0)
    answer = await two.agent(route, body, status=status)
    if status == 401:
        assert answer == {"error": {"code": "unauthorized", "message": "unknown device token"}}
        # the cached token is dropped: the next request asks the store, and is refused too
        await two.agent("pull", {"wait": 0}, status=401)
