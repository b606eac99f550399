"""Pacing with an injected clock and random source: nothing sleeps."""

from __future__ import annotations

from simhive.agent.pacing import Pacer, SimLimits


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def no_caps(**kw: object) -> SimLimits:
    base: dict[str, object] = {
        "min_interval_seconds": 10.0,
        "delaybetweeneachsms": None,
        "per_minute": None,
        "per_hour": None,
        "per_day": None,
    }
    base.update(kw)
    return SimLimits(**base)  # type: ignore[arg-type]


def test_first_send_is_immediate_then_min_interval() -> None:
    clock = Clock()
    p = Pacer(no_caps(), clock=clock)
    assert p.delay() == 0
    p.record_send()
    assert p.delay() == 10.0
    clock.t += 4
    assert p.delay() == 6.0
    clock.t += 6
    assert p.delay() == 0


def test_random_pause_wins_when_longer_than_floor_and_floor_when_shorter() -> None:
    clock = Clock()
    draws: list[tuple[float, float]] = []

    def rand(a: float, b: float) -> float:
        draws.append((a, b))
        return 0.9 * b

    p = Pacer(no_caps(delaybetweeneachsms=30), clock=clock, rand=rand)
    p.record_send()
    assert draws == [(0.0, 30.0)]  # a random 0..n pause, as the vendor app does
    assert p.delay() == 27.0
    p.update(no_caps(delaybetweeneachsms=5))
    clock.t += 27
    p.record_send()
    assert p.delay() == 10.0  # 4.5 s drawn, but never less than the SIM's minimum interval


def test_null_delay_draws_nothing() -> None:
    p = Pacer(no_caps(min_interval_seconds=0), clock=Clock(), rand=lambda a, b: 1 / 0)
    p.record_send()
    assert p.delay() == 0


def test_per_minute_cap_is_a_sliding_window() -> None:
    clock = Clock()
    p = Pacer(no_caps(min_interval_seconds=1, per_minute=3), clock=clock)
    for _ in range(3):
        assert p.delay() == 0
        p.record_send()
        clock.t += 1
    # Three sends at t0, t0+1, t0+2; now t0+3: the 4th may go when the first leaves the window.
    assert p.delay() == 57.0
    clock.t += 57
    assert p.delay() == 0


def test_hour_and_day_caps() -> None:
    clock = Clock()
    p = Pacer(no_caps(min_interval_seconds=0, per_hour=2, per_day=3), clock=clock)
    p.record_send()
    clock.t += 100
    p.record_send()
    assert p.delay() == 3600 - 100
    clock.t += 3600
    p.record_send()
    assert p.delay() == 86400 - 3700  # the day cap now binds
    p.update(no_caps(min_interval_seconds=0, per_day=0))
    assert p.delay() == 86400  # a cap of 0 sends nothing; look again after a window


def test_seed_restores_the_windows_after_a_restart() -> None:
    clock = Clock()
    p = Pacer(no_caps(min_interval_seconds=10, per_day=2), clock=clock)
    p.seed([clock.t - 90_000, clock.t - 5000, clock.t - 4])  # the first is older than a day
    assert p.delay() == 86400 - 5000
    p.update(no_caps(min_interval_seconds=10))
    assert p.delay() == 6.0  # the minimum interval counts from the last journaled send


def test_the_servers_floor_replaces_the_default_one_a_restart_was_seeded_with() -> None:
    # The agent seeds its pacers from the journal before the server's hello arrives, so the gap
    # after the last send is first measured with the default 10 s floor.
    for server_floor, expected in ((0.0, 0.0), (2.0, 0.0), (5.0, 1.0), (60.0, 56.0)):
        clock = Clock()
        p = Pacer(SimLimits(), clock=clock)
        p.seed([clock.t - 4])
        assert p.delay() == 6.0
        p.update(no_caps(min_interval_seconds=server_floor))
        assert p.delay() == expected, server_floor


def test_a_new_floor_keeps_a_longer_random_pause_and_a_failures_gap() -> None:
    clock = Clock()
    p = Pacer(no_caps(min_interval_seconds=10, delaybetweeneachsms=30), clock=clock,
              rand=lambda a, b: 0.5 * b)  # fmt: skip
    p.record_send()
    p.update(no_caps(min_interval_seconds=1, delaybetweeneachsms=30))
    assert p.delay() == 15.0  # the 15 s pause drawn at the send still holds
    clock.t += 15
    p.record_failure(throttled=True)  # floor 1 s x 2
    p.update(no_caps(min_interval_seconds=0, delaybetweeneachsms=30))
    assert p.delay() == 2.0


def test_throttling_failures_slow_the_sim_and_successes_recover() -> None:
    clock = Clock()
    p = Pacer(no_caps(min_interval_seconds=10), clock=clock)
    p.record_failure(throttled=True)
    assert p.slowdown == 2 and p.delay() == 20.0
    for _ in range(5):
        p.record_failure(throttled=True)
    assert p.slowdown == 8
    clock.t += 100
    p.record_send()
    assert p.delay() == 80.0
    assert p.slowdown == 4
    p.record_failure(throttled=False)
    assert p.slowdown == 4


def test_limits_from_hello_settings() -> None:
    settings = {
        "delaybetweeneachsms": 5,
        "sims": {
            "0": {"min_interval_seconds": 3, "per_minute": None, "per_hour": 50},
            "1": {"min_interval_seconds": "junk", "per_day": -1},
        },
    }
    s0 = SimLimits.from_settings(settings, 0)
    assert s0 == SimLimits(
        min_interval_seconds=3.0, delaybetweeneachsms=5.0, per_minute=None, per_hour=50, per_day=500
    )
    s1 = SimLimits.from_settings(settings, 1)
    assert s1.min_interval_seconds == 10.0 and s1.per_day == 500  # bad values -> defaults
    assert SimLimits.from_settings({"delaybetweeneachsms": None}, 2).delaybetweeneachsms is None
