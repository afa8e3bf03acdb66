"""A client whose edge is killed moves to another edge and misses nothing, twice nothing."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from roomcast_client import RoomcastClient, fetch_token, publish
from tests.conftest import BUSES, Infra, infra_on
from tests.e2e.conftest import Stack, assert_no_message, start_stack


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


@pytest.fixture
def two_edges(infra: Infra, tmp_path: Path) -> Iterator[Stack]:
    running = start_stack(infra, tmp_path, edges=2)
    yield running
    running.stop()


async def test_client_recovers_on_the_other_edge_after_sigkill(two_edges: Stack) -> None:
    stack = two_edges
    room = f"r-{uuid.uuid4().hex[:6]}"
    async with aiohttp.ClientSession() as session:
        token = await fetch_token(session, stack.auth.url, device_id="failover")
        client = RoomcastClient(
            [stack.ws_url(0), stack.ws_url(1)],
            token,
            rooms=(room,),
            session=session,
            backoff_min=0.1,
            backoff_max=1.0,
        )
        await client.connect()
        try:
            for i in range(10):
                await publish(session, stack.publisher.url, i, room=room)
            before = [(await client.next_message(timeout=20)).payload for _ in range(10)]
            assert before == list(range(10))

            stack.edges[0].process.send_signal(signal.SIGKILL)
            stack.edges[0].process.wait(timeout=10)
            # Published while the client has no connection at all.
            for i in range(10, 25):
                await publish(session, stack.publisher.url, i, room=room)

            after = [(await client.next_message(timeout=30)).payload for _ in range(15)]
            assert after == list(range(10, 25)), "missed or reordered messages"
            assert client.connects == 2
            assert client.last_connected.get("recovered") is True
            # Live again after the seam, and nothing was delivered twice.
            await publish(session, stack.publisher.url, 25, room=room)
            assert (await client.next_message(timeout=20)).payload == 25
            await assert_no_message(client)
        finally:
            await client.close()
