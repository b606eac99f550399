"""Login lockouts: per account email and per client address."""

from __future__ import annotations

from server.core.limits import LOGIN_FAILURES_PER_ACCOUNT
from server.core.ratelimit import FailureLimiter
from tests.server.conftest import PASSWORD, Api


def test_limiter_window() -> None:
    now = [0.0]
    limiter = FailureLimiter(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("k") == 0
        limiter.failure("k")
        now[0] += 1
    assert limiter.retry_after("k") == 57  # the first failure leaves the window at t=60
    assert limiter.retry_after("other") == 0
    now[0] = 60.5
    assert limiter.retry_after("k") == 0  # one failure aged out: 2 of 3 left
    limiter.failure("k")
    assert limiter.retry_after("k") > 0
    limiter.success("k")
    assert limiter.retry_after("k") == 0


def test_limiter_memory_is_bounded() -> None:
    limiter = FailureLimiter(3, 60, max_keys=100)
    for i in range(1000):
        limiter.failure(f"k{i}")
    assert len(limiter._failures) <= 100


async def test_gettoken_locks_after_repeated_failures(api: Api) -> None:
    for _ in range(LOGIN_FAILURES_PER_ACCOUNT):
        assert await api.err("gettoken", {"email": api.email, "pass": "wrong"}) == (
            "Login or password incorrect"
        )
    locked = await api.err("gettoken", {"email": api.email, "pass": PASSWORD})
    assert locked.startswith("Too many failed logins; try again in ")
    # email + pass on smstosend is the same login, so it is locked too; the token still works
    assert (await api.err("smstosend", {"email": api.email.upper(), "pass": PASSWORD})).startswith(
        "Too many failed logins"
    )
    assert (await api.ok("getalldevices", {}, "get"))["count"] == 1
    # another account from the same client is not locked (the per-client limit is higher)
    await api.gateway.create_account("second@example.com", PASSWORD)
    data = await api.call("gettoken", {"email": "second@example.com", "pass": PASSWORD})
    assert data["error"] == 0
