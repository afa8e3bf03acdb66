"""The single-message path's cheaper parts answer exactly as what they replace: the
clock as wire.now_time, the acknowledgement watch as a timeout per wait."""

from __future__ import annotations

import asyncio

import pytest

from roomcast_core.wire import format_time
from roomcast_publisher.adapters.kafka_sink import AckWatch, _all_done
from roomcast_publisher.domain.publishing import millisecond_clock


@pytest.mark.parametrize(
    "moment", [0.0, 1.0, 1_764_500_000.123, 1_764_500_000.9994, 1_764_500_059.5, 4_102_444_799.25]
)
def test_the_clock_writes_what_wire_writes(moment: float) -> None:
    clock = millisecond_clock(lambda: moment)
    assert clock() == format_time(moment)
    assert clock() == format_time(moment)  # from the cached second too


def test_the_clock_follows_the_seconds() -> None:
    moments = iter([100.5, 100.75, 101.0, 3_700.001])
    clock = millisecond_clock(lambda: next(moments))
    assert [clock() for _ in range(4)] == [
        format_time(m) for m in (100.5, 100.75, 101.0, 3_700.001)
    ]


async def test_the_watch_answers_false_only_after_its_bound() -> None:
    loop = asyncio.get_running_loop()
    watch = AckWatch(0.2)
    acknowledged: asyncio.Future[None] = loop.create_future()
    never: asyncio.Future[None] = loop.create_future()
    started = loop.time()
    quick = asyncio.create_task(_all_done([acknowledged], watch))
    slow = asyncio.create_task(_all_done([never], watch))
    await asyncio.sleep(0.05)
    acknowledged.set_result(None)
    assert await quick is True
    assert not slow.done()  # the first wait's answer does not end the second
    assert await slow is False
    # Bounded by the watch, not ended early: a ratio of the bound, no absolute timing.
    assert loop.time() - started >= 0.2 * 0.95


async def test_the_watch_keeps_each_wait_to_its_own_deadline() -> None:
    loop = asyncio.get_running_loop()
    watch = AckWatch(0.2)
    first: asyncio.Future[None] = loop.create_future()
    first_wait = asyncio.create_task(_all_done([first], watch))
    await asyncio.sleep(0.1)
    second: asyncio.Future[None] = loop.create_future()
    second_wait = asyncio.create_task(_all_done([second], watch))
    assert await first_wait is False
    assert not second_wait.done()  # its bound runs from its own start
    second.set_result(None)
    assert await second_wait is True
    # Already resolved futures need no wait at all.
    assert await _all_done([second], watch) is True
