"""The recovery history's bounds on a running edge: bytes at start-up, age on a timer.

On both buses, with one partition (a Kafka topic made so, one Redis stream).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from websockets.asyncio.client import ClientConnection

from roomcast_core.stream_wire import counter_key, stream_key
from roomcast_core.wire import Message, encode_headers, encode_key, encode_value
from tests.conftest import BUSES, Infra, ServiceFactory, infra_on
from tests.integration.edge.conftest import WAIT, connect, message, metric, recv_json, token
from tests.streams import stream_publisher

PAYLOAD = "x" * 2000
ONE_PARTITION = {"ROOMCAST_BUS__PARTITIONS": "1"}  # read on the Redis bus only


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


async def _create(infra: Infra, topic: str) -> None:
    if infra.bus == "redis":
        return  # a stream is made by its first entry
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()


async def _produce(infra: Infra, topic: str, msgs: list[Message], timestamp_ms: int | None) -> None:
    """Write `msgs` to partition 0, stamped `timestamp_ms` (None: now)."""
    if infra.bus == "redis":
        await _append(infra, topic, msgs, timestamp_ms)
        return
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for msg in msgs:
            await producer.send_and_wait(
                topic,
                encode_value(msg),
                key=encode_key(msg),
                headers=encode_headers(msg),
                partition=0,
                timestamp_ms=timestamp_ms,
            )
    finally:
        await producer.stop()


async def _append(infra: Infra, topic: str, msgs: list[Message], timestamp_ms: int | None) -> None:
    if timestamp_ms is None:
        streams = stream_publisher(infra.redis_url, topic, partitions=1)
        try:
            await streams.send_many(msgs)
        finally:
            await streams.close()
        return
    # A time of the past is an id of the past: written as the documented format says,
    # the offset taken from the stream's counter.
    client = aioredis.Redis.from_url(infra.redis_url)
    try:
        for seq, msg in enumerate(msgs, 1):
            offset = await client.incr(counter_key(topic, 0)) - 1
            fields = {"offset": offset, "key": encode_key(msg), "value": encode_value(msg)}
            await client.xadd(stream_key(topic, 0), fields, id=f"{timestamp_ms}-{seq}")  # type: ignore[arg-type]
    finally:
        await client.aclose()


async def _push(ws: ClientConnection) -> dict[str, Any]:
    while True:
        body = await recv_json(ws)
        if "meta" in body:
            return body


async def test_start_up_fill_stays_within_the_byte_and_age_bounds(
    infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    await _create(infra, topic)
    old = [message({"old": i, "pad": PAYLOAD}) for i in range(10)]
    young = [message({"young": i, "pad": PAYLOAD}) for i in range(40)]
    # Older than the age bound: the fill does not keep them.
    await _produce(infra, topic, old, int((time.time() - 3600) * 1000))
    await _produce(infra, topic, young, None)
    budget = 30_000  # about a dozen of these ~2 KB pushes
    edge = start_service(
        "edge",
        infra.env(
            topic,
            **ONE_PARTITION,
            ROOMCAST_EDGE__HISTORY_BYTES=str(budget),
            ROOMCAST_EDGE__HISTORY_AGE="600",
            ROOMCAST_EDGE__HISTORY_SIZE="1000",
        ),
    )
    held = metric(edge, "roomcast_edge_history_bytes")
    count = int(metric(edge, "roomcast_edge_history_messages"))
    assert 0 < held <= budget
    assert 5 <= count < len(young)
    # Exactly the newest `count` messages are held, and `recovered` says so.
    first_held = len(old) + len(young) - count
    ws, hello = await connect(edge, token=token(), since=f"0:{first_held - 1}")
    assert hello["recovered"] is True
    got = [(await _push(ws))["meta"]["message_id"] for _ in range(count)]
    assert got == [m.message_id for m in young[-count:]]
    # One more is beyond the history: the bus still holds it, so it is read back from there.
    short, hello = await connect(edge, token=token(), since=f"0:{first_held - 2}")
    assert hello["recovered"] is True
    assert (await _push(short))["meta"]["position"] == f"0:{first_held - 1}"
    assert metric(edge, "roomcast_edge_archive_records_total") >= 1
    for client in (ws, short):
        await client.close()


async def test_age_eviction_runs_on_a_timer_without_any_client(
    infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    await _create(infra, topic)
    edge = start_service("edge", infra.env(topic, **ONE_PARTITION, ROOMCAST_EDGE__HISTORY_AGE="2"))
    ws, hello = await connect(edge, token=token())
    assert hello["position"] == "0:-1"
    msgs = [message({"n": i}) for i in range(3)]
    await _produce(infra, topic, msgs, None)
    for _ in msgs:
        await _push(ws)
    assert metric(edge, "roomcast_edge_history_messages") >= 1
    # No request, no reconnect: only the timer can empty the history.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while metric(edge, "roomcast_edge_history_messages") > 0:
        assert loop.time() < deadline, "the history kept messages older than its age bound"
        await asyncio.sleep(0.2)
    assert metric(edge, "roomcast_edge_history_bytes") == 0
    # What aged out is read back from the bus; nothing missed since the last one still is.
    again, hello = await connect(edge, token=token(), since="0:1")
    assert hello["recovered"] is True
    assert (await _push(again))["meta"]["position"] == "0:2"
    assert metric(edge, "roomcast_edge_archive_records_total") >= 1
    current, hello = await connect(edge, token=token(), since="0:2")
    assert hello["recovered"] is True
    for client in (ws, again, current):
        await client.close()
