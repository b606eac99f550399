"""Webhook rules in isolation: the back-off schedule, URL validation, and that a row waiting
behind its message's failing row does not make the sender poll (it would spin for hours)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from simhive.server.core.errors import InvalidInput
from simhive.server.core.webhooks import RetryPolicy, validate_url
from tests.server_agent.conftest import Env, Receiver, eventually


def test_backoff_doubles_up_to_the_cap_with_bounded_jitter() -> None:
    policy = RetryPolicy(base_seconds=10, max_seconds=3600, max_attempts=60, jitter=0.2)
    middle = [policy.delay(n, rand=lambda: 0.5) for n in range(1, 11)]
    assert middle == [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert policy.delay(3, rand=lambda: 0.0) == pytest.approx(40 * 0.8)
    assert policy.delay(3, rand=lambda: 1.0) == pytest.approx(40 * 1.2)
    assert policy.delay(59, rand=lambda: 0.5) == 3600


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://app.example.com/hooks?x=1", True),
        ("http://127.0.0.1:8080/in", True),
        ("", True),  # clears the webhook
        ("ftp://example.com/x", False),
        ("http://", False),
        ("https:///path", False),
        ("example.com/hook", False),
        ("http://" + "a" * 2000, False),
    ],
)
def test_webhook_urls(url: str, ok: bool) -> None:
    if ok:
        assert validate_url(url) == url
    else:
        with pytest.raises(InvalidInput):
            validate_url(url)


async def test_rows_behind_a_failing_row_do_not_count_as_due(env: Env, receiver: Receiver) -> None:
    await env.set_webhooks(receiver)
    receiver.always_fail = True
    sms_id = await env.send()
    lease = await env.agent("pull", {"wait": 0})
    await env.agent("commit", {"lease_id": lease["lease_id"], "ids": [sms_id]})
    events = [
        {"event_id": f"{sms_id}:{t}", "sms_id": sms_id, "type": t} for t in ("sent", "delivered")
    ]
    await env.agent("report", {"events": events})
    await eventually(lambda: _failed_once(env), "the first row failed once")
    rows = await env.webhooks()
    sent_row, delivered_row = rows
    assert (sent_row["status"], delivered_row["status"]) == (6, 7)
    assert delivered_row["attempts"] == 0  # never tried while `sent` is not through
    nxt = await env.gw.store.next_webhook_time()
    # the waiting row is due since it was written, but only the failing row's retry time counts
    assert isinstance(delivered_row["next_attempt"], int) and nxt is not None
    assert nxt > delivered_row["next_attempt"]
    assert all(r.headers["X-Simhive-Event-Id"] == f"status:{sms_id}:6" for r in receiver.got)


async def _failed_once(env: Env) -> bool:
    rows = await env.webhooks()
    return bool(rows) and rows[0]["attempts"] == 1 and rows[0]["state"] == "pending"


async def test_old_finished_rows_are_pruned_pending_ones_kept(env: Env, receiver: Receiver) -> None:
    await env.set_webhooks(receiver)
    msg = {"key": "k", "sim": 0, "from": "+4917012345", "body": "a"}
    await env.agent("incoming", {"messages": [msg]})
    await eventually(lambda: _states(env, ["delivered"]), "first webhook delivered")
    receiver.always_fail = True
    await env.agent("incoming", {"messages": [{**msg, "key": "k2"}]})
    later = env.gw.clock() + 1_000_000
    assert await env.gw.store.prune_webhooks(later) == 1
    rows = await env.webhooks()
    assert len(rows) == 1 and rows[0]["state"] == "pending"


async def _states(env: Env, want: list[str]) -> bool:
    return [r["state"] for r in await env.webhooks()] == want


async def test_a_hanging_receiver_does_not_hold_other_devices_webhooks(
    env: Env, receiver: Receiver
) -> None:
    await env.gw.store.update_device_settings(
        env.device_id, {"webhook_incoming": receiver.url("/slow")}
    )
    await env.gw.store.update_device_settings(
        env.other_device_id, {"webhook_incoming": receiver.url("/fast")}
    )
    receiver.hold_paths = {"/slow"}
    msg = {"key": "k", "sim": 0, "from": "+4917012345", "body": "a"}
    await env.agent("incoming", {"messages": [msg]})
    await eventually(lambda: _held(receiver), "the slow receiver holding the first webhook")
    await env.agent("incoming", {"messages": [msg]}, token=env.other_token)
    await eventually(lambda: _some(receiver.ok("/fast")), "the other device's webhook")
    assert [r.status for r in receiver.got if r.path == "/slow"] == [0]  # still held
    receiver.release()
    await eventually(lambda: _some(receiver.ok("/slow")), "the slow one after release")


async def _held(receiver: Receiver) -> bool:
    return any(r.path == "/slow" and r.status == 0 for r in receiver.got)


async def _some(items: Sequence[object]) -> Sequence[object] | None:
    return items or None


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/hook?token=SECRET123",  # yarl refuses it
        "http://127.0.0.1:1/hook?token=SECRET123",  # nothing listens on port 1
    ],
)
async def test_an_unusable_url_fails_its_attempts_without_leaking_it(env: Env, url: str) -> None:
    # set around the CLI's validation, as a direct database edit would
    await env.gw.store.update_device_settings(env.device_id, {"webhook_incoming": url})
    msg = {"key": "k", "sim": 0, "from": "+4917012345", "body": "a"}
    await env.agent("incoming", {"messages": [msg]})
    [row] = await eventually(lambda: _dead(env), "the webhook given up")
    assert row["attempts"] == 4
    assert isinstance(row["last_error"], str) and "SECRET123" not in row["last_error"]


async def _dead(env: Env) -> list[dict[str, object]] | None:
    rows = await env.webhooks()
    return rows if rows and rows[0]["state"] == "dead" else None
