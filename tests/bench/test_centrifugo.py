"""The Centrifugo peer for real: a tiny `ticks` step through its Kafka consumer and its HTTP API.

Asserts on counts only (every client gets exactly the messages of its channels), never on
speed. The binary is built once by scripts/ensure-centrifugo.sh and cached.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from bench.feeds import CentrifugoApiFeed, KafkaFeed
from bench.loadgen import LoadGenerator
from bench.peers.centrifugo import KafkaSource
from bench.runner import CENTRIFUGO_API_KEY, SECRET, _create_topic, mint_tokens
from bench.servers import CENTRIFUGO, CENTRIFUGO_HTTP, start_centrifugo

from tests.bench.tiny_ticks import one_step


@pytest.fixture(scope="module")
def load() -> Iterator[LoadGenerator]:
    with LoadGenerator(1, None) as generator:
        yield generator


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await client.start()
    yield client
    await client.stop()


async def test_the_kafka_consumer_delivers_each_record_to_its_channel_once(
    tmp_path: Path, kafka_bootstrap: str, producer: AIOKafkaProducer, load: LoadGenerator
) -> None:
    topic = f"bench-centrifugo.test.{uuid.uuid4().hex[:8]}"
    await _create_topic(kafka_bootstrap, topic)
    source = KafkaSource(kafka_bootstrap, topic, f"group-{topic}")
    server = await asyncio.to_thread(
        start_centrifugo, CENTRIFUGO, tmp_path, None, SECRET, CENTRIFUGO_API_KEY, source
    )
    try:
        async with aiohttp.ClientSession() as session:
            feed = KafkaFeed(producer, topic, centrifugo_channels=True)
            step = await one_step(server, feed, load, session)
    finally:
        server.stop()
    assert step["messages"] == 40
    assert step["expected"] == step["delivered"]
    assert (step["lost"], step["duplicated"]) == (0, 0)
    assert isinstance(step["expected"], int)
    assert step["expected"] > 0


async def test_the_http_api_feed_and_low_memory_settings_work_too(
    tmp_path: Path, load: LoadGenerator
) -> None:
    server = await asyncio.to_thread(
        start_centrifugo, CENTRIFUGO_HTTP, tmp_path, None, SECRET, CENTRIFUGO_API_KEY, None, True
    )
    try:
        async with aiohttp.ClientSession() as session:
            feed = CentrifugoApiFeed(session, server.base_url, CENTRIFUGO_API_KEY)
            step = await one_step(server, feed, load, session)
            # a token signed with another secret is refused by the connect command
            bad = server.dial(0, mint_tokens(1)[0][:-3] + "xyz", [("t0000", "trade")])
            result = await load.connect([bad], timeout=10, protocol=server.protocol)
            assert (result["opened"], result["failed"]) == (0, 1)
    finally:
        server.stop()
    assert step["expected"] == step["delivered"]
    assert (step["lost"], step["duplicated"]) == (0, 0)
