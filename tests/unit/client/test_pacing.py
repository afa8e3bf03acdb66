"""The load mode's publishing schedule, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from roomcast_client.load import LoadPlan
from roomcast_client.pacing import Schedule, Tally, run_schedule


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # Like a real sleep: other tasks run meanwhile (and may take time), and it ends
        # at its target or, when they overran it, as soon as they are done.
        target = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, target)


async def test_messages_leave_at_their_due_times() -> None:
    clock = FakeClock()
    sent_at: list[tuple[int, float]] = []

    async def send(index: int) -> None:
        sent_at.append((index, clock.now - 100.0))

    tally = await run_schedule(Schedule(rate=4, duration=1.0), send, clock=clock, sleep=clock.sleep)
    assert [i for i, _ in sent_at] == [0, 1, 2, 3]
    assert [at for _, at in sent_at] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert (tally.sent, tally.failed) == (4, 0)


async def test_a_slow_send_delays_the_next_but_not_the_rate() -> None:
    clock = FakeClock()
    started: list[float] = []

    async def send(index: int) -> None:
        started.append(clock.now - 100.0)
        if index == 0:
            clock.now += 0.6  # the first publish takes long, in the caller's time

    # One in flight at a time: the second waits for the first, then the schedule catches up.
    await run_schedule(
        Schedule(rate=4, duration=1.0), send, clock=clock, sleep=clock.sleep, max_in_flight=1
    )
    assert started == pytest.approx([0.0, 0.6, 0.6, 0.75])


async def test_failures_are_counted_and_the_run_goes_on() -> None:
    clock = FakeClock()

    async def send(index: int) -> None:
        if index % 2:
            raise RuntimeError("HTTP 503")

    tally = Tally()
    result = await run_schedule(
        Schedule(rate=10, duration=1.0), send, clock=clock, sleep=clock.sleep, tally=tally
    )
    assert result is tally
    assert (tally.sent, tally.failed, tally.last_error) == (5, 5, "HTTP 503")


def test_the_count_is_rate_times_duration() -> None:
    assert Schedule(rate=20, duration=2.0).count == 40
    assert Schedule(rate=0.5, duration=3.0).count == 1
    assert Schedule(rate=3, duration=0.1).count == 0


def _plan(**overrides: object) -> LoadPlan:
    fields: dict[str, object] = {
        "edge": "ws://edge/ws",
        "publisher": "http://pub",
        "connections": 5,
        "duration": 30.0,
        "rate": 20.0,
    }
    fields.update(overrides)
    return LoadPlan(**fields)  # type: ignore[arg-type]


def test_publish_mode_targets_the_connections_own_room_and_topic() -> None:
    plan = _plan(rooms=("1001", "2002"), subscriptions=(("order", "*"),))
    assert plan.target() == {"room": "1001", "topic": "order", "type": "event"}
    line = plan.describe()
    assert line.startswith("mode: publish 20 msg/s for 30 s to room 1001 and topic order:event")
    assert "through http://pub" in line


def test_listen_mode_says_so() -> None:
    plan = _plan(rate=0.0, rooms=("1001",))
    assert not plan.publishing
    assert plan.describe().startswith("mode: listen only (--rate 0)")


def test_no_room_nor_topic_is_a_broadcast() -> None:
    plan = _plan()
    assert plan.target() == {}
    assert "to everyone (a broadcast)" in plan.describe()
