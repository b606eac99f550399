"""Login limits: counted before the password check, locked per (email, address) and per address,
slowed down per email and globally (server/core/ratelimit.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from simhive.server.core import security
from simhive.server.core.limits import LOGIN_FAILURES_PER_PAIR
from simhive.server.core.ratelimit import FailureWindow, Locked, LoginGuard, wait_text
from tests.server._server import PASSWORD as LIVE_PASSWORD
from tests.server._server import server
from tests.server.conftest import PASSWORD, Api

BAD = "Login or password incorrect"
LOCKED = "Too many failed logins; try again in "
STRANGER = "127.0.0.2"
OWNER = "127.0.0.3"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the limiter on its own ----------------------------------------------------------------------


def test_window_counts_attempts_in_flight() -> None:
    clock = Clock()
    window = FailureWindow(3, 60, clock, max_keys=10)
    for _ in range(3):
        assert window.retry_after("k") == 0
        window.begin("k")  # admitted, not yet judged: counts already
    assert window.retry_after("k") == 1.0  # full of attempts being judged: ask again soon
    for _ in range(3):
        clock.now += 1
        window.end("k", failed=True)
    assert window.retry_after("k") == 58  # the first failure (t=1) leaves the window at t=61
    assert window.retry_after("other") == 0
    clock.now = 61.5
    assert window.retry_after("k") == 0  # one failure aged out: 2 of 3 left
    window.begin("k")
    window.end("k", failed=False)  # a success adds nothing
    assert window.count("k") == 2
    window.clear("k")
    assert window.count("k") == 0


def test_window_memory_is_bounded() -> None:
    window = FailureWindow(3, 60, time.monotonic, max_keys=100)
    for i in range(1000):
        window.failure(f"k{i}")
    assert len(window._failures) <= 100


def guard(clock: Clock, **limits: Any) -> LoginGuard:
    settings: dict[str, Any] = dict(per_pair=3, per_client=5, window=60, email_after=4,
                                    email_interval=2.0, global_after=1000, global_interval=0.1,
                                    max_wait=5.0)  # fmt: skip
    return LoginGuard(clock, **{**settings, **limits})


def fail(g: LoginGuard, email: str, client: str) -> None:
    g.admit(email, client).done(False)


def test_lock_is_per_email_and_address() -> None:
    clock = Clock()
    g = guard(clock)
    for _ in range(3):
        fail(g, "owner@x", STRANGER)
    with pytest.raises(Locked):
        g.admit("owner@x", STRANGER)
    g.admit("owner@x", OWNER).done(True)  # the owner elsewhere is not locked
    g.admit("other@x", STRANGER).done(True)  # nor is the stranger for another email


def test_address_lock_across_emails() -> None:
    g = guard(Clock())
    for i in range(5):
        fail(g, f"user{i}@x", STRANGER)
    with pytest.raises(Locked):
        g.admit("fresh@x", STRANGER)
    g.admit("fresh@x", OWNER).done(True)


def test_email_slowdown_spaces_checks_and_refuses_far_slots() -> None:
    clock = Clock()
    g = guard(clock, per_pair=100, per_client=100)
    for i in range(4):  # 4 failures from 4 addresses: the email is slowed down from now on
        fail(g, "owner@x", f"10.0.0.{i}")
    delays = [g.admit("owner@x", f"10.0.1.{i}").delay for i in range(3)]
    assert delays == [0.0, 2.0, 4.0]  # one check per 2 s, each attempt waits for its slot
    with pytest.raises(Locked) as refused:
        for i in range(3):
            g.admit("owner@x", f"10.0.2.{i}")
    assert 5.0 < refused.value.retry_after <= 8.0  # beyond max_wait: refused, nothing reserved
    assert g.admit("someone-else@x", "10.0.3.1").delay == 0.0  # other emails are not slowed
    clock.now += 61  # the failures age out
    assert g.admit("owner@x", "10.0.4.1").delay == 0.0


def test_global_slowdown() -> None:
    clock = Clock()
    g = guard(clock, global_after=6, global_interval=0.5, email_after=1000)
    for i in range(6):
        fail(g, f"user{i}@x", f"10.0.0.{i}")
    assert [g.admit(f"new{i}@x", f"10.1.0.{i}").delay for i in range(3)] == [0.0, 0.5, 1.0]


def test_success_clears_only_its_own_pair() -> None:
    g = guard(Clock(), per_client=100, email_after=1000)
    for _ in range(2):
        fail(g, "owner@x", OWNER)
        fail(g, "owner@x", STRANGER)
    g.admit("owner@x", OWNER).done(True)
    for _ in range(3):  # the owner's address has its full allowance back
        fail(g, "owner@x", OWNER)
    fail(g, "owner@x", STRANGER)
    with pytest.raises(Locked):  # the stranger's count was not reset by the owner's success
        g.admit("owner@x", STRANGER)


def test_wait_text() -> None:
    assert [wait_text(s) for s in (0.2, 1.0, 59.5, 60.0, 61, 900)] == [
        "1 s", "1 s", "60 s", "1 min", "2 min", "15 min"
    ]  # fmt: skip


# -- through HTTP, in process (the password checks can be counted) ------------------------------


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    calls: list[float] = []
    real = security.verify_password

    def counting(password: str, stored: str) -> bool:
        calls.append(time.monotonic())
        return real(password, stored)

    monkeypatch.setattr(security, "verify_password", counting)
    yield calls


async def gettoken_from(
    address: str, url: str, email: str, password: str, times: int
) -> list[dict[str, Any]]:
    """`times` simultaneous gettoken calls from one source address, each on its own connection."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> dict[str, Any]:
            form = {"email": email, "pass": password}
            async with session.post(f"{url}/getdata/gettoken", data=form) as response:
                assert response.status == 200
                answer: dict[str, Any] = await response.json()
                return answer

        return list(await asyncio.gather(*(one() for _ in range(times))))


def tally(answers: list[dict[str, Any]]) -> Counter[str]:
    return Counter(LOCKED if a["message"].startswith(LOCKED) else a["message"] for a in answers)


def base_url(api: Api) -> str:
    return str(api.client.make_url("")).rstrip("/")


async def test_simultaneous_guesses_are_judged_at_most_the_limit(
    api: Api, scrypt_calls: list[float]
) -> None:
    answers = await gettoken_from(STRANGER, base_url(api), api.email, "wrong", 120)
    assert tally(answers) == {BAD: LOGIN_FAILURES_PER_PAIR, LOCKED: 120 - LOGIN_FAILURES_PER_PAIR}
    assert len(scrypt_calls) == LOGIN_FAILURES_PER_PAIR


async def test_owner_logs_in_from_elsewhere_while_a_stranger_hammers(
    api: Api, scrypt_calls: list[float]
) -> None:
    url = base_url(api)
    stop = asyncio.Event()

    async def hammer() -> Counter[str]:
        seen: Counter[str] = Counter()
        while not stop.is_set():
            seen.update(tally(await gettoken_from(STRANGER, url, api.email, "wrong", 20)))
        return seen

    stranger = asyncio.create_task(hammer())
    await asyncio.sleep(0.5)  # the stranger has locked their own pair by now
    started = time.monotonic()
    [owner] = await gettoken_from(OWNER, url, api.email, PASSWORD, 1)
    waited = time.monotonic() - started
    stop.set()
    seen = await stranger
    assert owner["error"] == 0 and security.looks_like_token(owner["token"]), owner
    # The email is slowed down (2 s between checks) after the stranger's failures, not locked.
    assert waited < 5, waited
    assert seen[BAD] == LOGIN_FAILURES_PER_PAIR and seen[LOCKED] > 0, seen
    # The owner's address still logs in after a mistake; the stranger's stays locked.
    assert (await api.err("gettoken", {"email": api.email, "pass": "wrong"})) == BAD


async def test_gettoken_locks_after_repeated_failures(api: Api) -> None:
    for _ in range(LOGIN_FAILURES_PER_PAIR):
        assert await api.err("gettoken", {"email": api.email, "pass": "wrong"}) == BAD
    locked = await api.err("gettoken", {"email": api.email, "pass": PASSWORD})
    assert locked.startswith(LOCKED) and locked.endswith(" min"), locked
    # email + pass on smstosend is the same login, so it is locked too; the token still works
    assert (await api.err("smstosend", {"email": api.email.upper(), "pass": PASSWORD})).startswith(
        LOCKED
    )
    assert (await api.ok("getalldevices", {}, "get"))["count"] == 1
    # another account from the same client is not locked (the per-client limit is higher)
    await api.gateway.create_account("second@example.com", PASSWORD)
    data = await api.call("gettoken", {"email": "second@example.com", "pass": PASSWORD})
    assert data["error"] == 0


# -- through a real server process -----------------------------------------------------------


def run(coro_fn: Callable[[], Any]) -> Any:
    return asyncio.run(coro_fn())


def test_real_server_judges_at_most_the_limit_of_a_burst(tmp_path: Path) -> None:
    with server(tmp_path) as srv:
        answers = run(lambda: gettoken_from(STRANGER, srv.url, srv.email, "wrong", 120))
        assert tally(answers) == {
            BAD: LOGIN_FAILURES_PER_PAIR, LOCKED: 120 - LOGIN_FAILURES_PER_PAIR
        }  # fmt: skip
        [owner] = run(lambda: gettoken_from(OWNER, srv.url, srv.email, LIVE_PASSWORD, 1))
        assert owner["error"] == 0, owner
