"""Readers of the bus's log: lent a few at a time, never all to one token, in turn."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from roomcast_edge.adapters.archive_reading import Lending
from roomcast_edge.domain.in_flight import InFlight
from roomcast_edge.metrics import EdgeMetrics


async def _hold(lending: Lending, owner: str, order: list[str], release: asyncio.Event) -> None:
    async with lending.slot(owner):
        order.append(owner)
        await release.wait()


async def test_one_token_never_holds_more_than_its_share() -> None:
    lending = Lending(4, EdgeMetrics(CollectorRegistry()))
    release = asyncio.Event()
    order: list[str] = []
    greedy = [asyncio.create_task(_hold(lending, "greedy", order, release)) for _ in range(4)]
    await asyncio.sleep(0)
    other = asyncio.create_task(_hold(lending, "other", order, release))
    await asyncio.sleep(0)
    # Two of the greedy token's four wait although readers are free; the other gets one.
    assert order == ["greedy", "greedy", "other"]
    release.set()
    await asyncio.gather(*greedy, other)
    assert order.count("greedy") == 4


async def test_waiters_are_served_in_order_and_a_cancelled_one_leaves_no_trace() -> None:
    metrics = EdgeMetrics(CollectorRegistry())
    lending = Lending(1, metrics)
    release = asyncio.Event()
    order: list[str] = []
    first = asyncio.create_task(_hold(lending, "a", order, release))
    await asyncio.sleep(0)
    gone = asyncio.create_task(_hold(lending, "b", order, release))
    later = asyncio.create_task(_hold(lending, "c", order, release))
    await asyncio.sleep(0)
    assert order == ["a"]
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    release.set()
    await asyncio.gather(first, later)
    assert order == ["a", "c"]
    # Everything given back: the next borrower gets one at once.
    async with asyncio.timeout(1):
        async with lending.slot("d"):
            pass


async def test_a_wait_cut_short_right_after_the_grant_gives_the_reader_back() -> None:
    lending = Lending(1, EdgeMetrics(CollectorRegistry()))
    first_done, never = asyncio.Event(), asyncio.Event()
    order: list[str] = []
    first = asyncio.create_task(_hold(lending, "a", order, first_done))
    await asyncio.sleep(0)
    second = asyncio.create_task(_hold(lending, "b", order, never))
    await asyncio.sleep(0)
    first_done.set()
    await asyncio.sleep(0)  # "a" gives its reader back and grants it to "b" ...
    assert first.done()
    second.cancel()  # ... which is cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await second
    assert order == ["a"]
    async with asyncio.timeout(1):
        async with lending.slot("c"):
            pass


def test_in_flight_counts_per_token() -> None:
    in_flight = InFlight(2)
    assert in_flight.enter("t1")
    assert in_flight.enter("t1")
    assert not in_flight.enter("t1")
    assert in_flight.enter("t2")
    in_flight.leave("t1")
    assert in_flight.enter("t1")
    in_flight.leave("t1")
    in_flight.leave("t1")
    in_flight.leave("t2")
    assert len(in_flight) == 0
