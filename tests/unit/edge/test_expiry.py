"""The expiry wheel: never early, never lost, moves and cancels hold, sweeps cost what is due."""

from __future__ import annotations

import random
import time

from roomcast_edge.domain.expiry import ExpiryWheel


def test_items_come_out_once_at_or_after_their_deadline() -> None:
    rng = random.Random(7)
    wheel: ExpiryWheel[int] = ExpiryWheel()
    deadlines = {i: 1000.0 + rng.uniform(0, 60) for i in range(2000)}
    for item, deadline in deadlines.items():
        wheel.schedule(item, deadline)
    seen: list[int] = []
    now = 1000.0
    while now < 1065.0:
        now += rng.uniform(0.05, 1.7)
        for item in wheel.due(now):
            assert deadlines[item] <= now, (item, deadlines[item], now)
            seen.append(item)
        # Nothing due is left behind by a sweep.
        assert all(d > now for i, d in deadlines.items() if i in wheel)
    assert sorted(seen) == sorted(deadlines)
    assert len(wheel) == 0


def test_sub_second_deadlines_are_exact() -> None:
    wheel: ExpiryWheel[str] = ExpiryWheel()
    wheel.schedule("a", 10.2)
    wheel.schedule("b", 10.7)
    assert wheel.due(10.1) == []
    assert wheel.due(10.2) == ["a"]
    assert wheel.due(10.69) == []
    assert wheel.due(10.7) == ["b"]


def test_a_moved_deadline_replaces_the_old_one() -> None:
    wheel: ExpiryWheel[str] = ExpiryWheel()
    wheel.schedule("refreshed", 10.0)
    wheel.schedule("kept", 10.0)
    wheel.schedule("refreshed", 40.0)  # a refresh moves it later
    assert wheel.deadline("refreshed") == 40.0
    assert wheel.due(20.0) == ["kept"]
    assert wheel.due(39.9) == []
    assert wheel.due(40.0) == ["refreshed"]
    # ... or earlier: a narrower token may also end sooner.
    wheel.schedule("sooner", 100.0)
    wheel.schedule("sooner", 50.0)
    assert wheel.due(60.0) == ["sooner"]
    assert wheel.due(200.0) == []


def test_cancelled_items_never_come_out() -> None:
    wheel: ExpiryWheel[int] = ExpiryWheel()
    for i in range(10):
        wheel.schedule(i, 5.0 + i)
    for i in range(0, 10, 2):
        wheel.cancel(i)
    wheel.cancel(99)  # unknown: a no-op
    assert 2 not in wheel
    assert 3 in wheel
    assert sorted(wheel.due(100.0)) == [1, 3, 5, 7, 9]
    # A second emptied by cancels and filled again still fires once.
    wheel.schedule(1, 200.5)
    wheel.cancel(1)
    wheel.schedule(2, 200.6)
    assert wheel.due(201.0) == [2]
    assert wheel.due(202.0) == []


def _sweep_seconds(wheel: ExpiryWheel[int], now: float, rounds: int) -> float:
    started = time.perf_counter()
    for _ in range(rounds):
        wheel.due(now)
    return time.perf_counter() - started


def test_a_sweep_costs_what_is_due_not_what_is_pending() -> None:
    """20 000 pending deadlines make an empty sweep no slower than 10 do."""
    small: ExpiryWheel[int] = ExpiryWheel()
    large: ExpiryWheel[int] = ExpiryWheel()
    for i in range(10):
        small.schedule(i, 10_000.0 + i)
    for i in range(20_000):
        large.schedule(i, 10_000.0 + (i % 3600))  # staggered over an hour
    rounds = 2000
    # Interleaved and best-of, so a busy machine slows both alike.
    small_best = min(_sweep_seconds(small, 5_000.0, rounds) for _ in range(5))
    large_best = min(_sweep_seconds(large, 5_000.0, rounds) for _ in range(5))
    assert large_best < small_best * 4, (small_best, large_best)
    # And a sweep that finds 1 % of them due returns exactly those.
    due = large.due(10_036.0)
    assert len(due) == len([i for i in range(20_000) if i % 3600 <= 36])
    assert len(large) == 20_000 - len(due)
