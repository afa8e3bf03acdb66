"""A 10 MB gap is recovered like a 10-message one: on the same edge and on another."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from roomcast_edge.domain.positions import parse_vector
from tests.conftest import BUSES, Infra, ServiceFactory, infra_on
from tests.integration.edge.conftest import (
    Publisher,
    connect,
    message,
    read_seqs_in_order,
    token,
)

GAP = 16_000
PAD = "x" * 560  # ~600 bytes per push: a ~10 MB gap, ten times the outbound limit


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


async def test_a_10_mb_gap_is_recovered_in_order_on_the_same_and_on_another_edge(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    env = infra.env(topic, ROOMCAST_EDGE__MAX_OUTBOUND_BYTES="1048576")
    first = start_service("edge", env, name="edge-a")
    room = f"big-{uuid.uuid4().hex[:6]}"
    ws, hello = await connect(first, token=token(), roomIds=room)
    since = hello["position"]
    await ws.close()

    missed = [message({"seq": i, "pad": PAD}, room=room) for i in range(GAP)]
    for start in range(0, GAP, 2000):
        await publisher.send_many(missed[start : start + 2000])
    # A marker on the same key: once a client sees it, the edge has read the whole gap.
    await publisher.send(message({"seq": GAP, "pad": ""}, room=room))

    # A client with a small receive queue: it reads the socket only as fast as it
    # handles pushes, so the edge has to wait for it, again and again.
    options = {"max_queue": 32}
    again, hello = await connect(first, options, token=token(), roomIds=room, since=since)
    assert hello["recovered"] is True
    vector = parse_vector(since)
    reading = asyncio.create_task(read_seqs_in_order(again, vector, GAP + 1 + 50))
    # Live messages published while the replay runs join it with no gap, no duplicate.
    await asyncio.sleep(0.5)
    live = [message({"seq": GAP + 1 + i, "pad": PAD}, room=room) for i in range(50)]
    for msg in live:
        await publisher.send(msg)
    seqs = await asyncio.wait_for(reading, 180)
    assert seqs == list(range(GAP + 1 + 50))
    assert again.close_code is None  # never 4008
    await again.close()

    # Another edge, started now, fills its history from Kafka and serves the same vector.
    second = start_service("edge", env, name="edge-b")
    other, hello = await connect(second, options, token=token(), roomIds=room, since=since)
    assert hello["recovered"] is True
    seqs = await asyncio.wait_for(read_seqs_in_order(other, parse_vector(since), GAP + 1 + 50), 180)
    assert seqs == list(range(GAP + 1 + 50))
    assert other.close_code is None
    await other.close()
