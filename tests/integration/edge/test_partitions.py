"""The topic changing under a running edge: partitions added, the topic re-created.

Both edges here check the topic every half second, so what SPEC allows a minute for
happens in about a second; the waits below are only generous upper bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from websockets.asyncio.client import ClientConnection

from roomcast_core.wire import Message, encode_headers, encode_key, encode_value
from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import connect, message, recv_json, token

CHECK = {"ROOMCAST_EDGE__PARTITION_CHECK_INTERVAL": "0.5", "ROOMCAST_KAFKA__PARTITIONS": "1"}
# Well inside SPEC's 60 s, far above the half-second check interval.
NOTICE = 30.0


@pytest_asyncio.fixture
async def admin(infra: Infra) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def producer_seeing(
    bootstrap: str, topic: str, partitions: int
) -> AsyncIterator[AIOKafkaProducer]:
    """A producer whose metadata already lists `partitions` partitions of the topic."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + NOTICE
    while True:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        if len(await producer.partitions_for(topic)) >= partitions:
            break
        await producer.stop()
        assert loop.time() < deadline, f"{topic} never showed {partitions} partitions"
        await asyncio.sleep(0.2)
    try:
        yield producer
    finally:
        await producer.stop()


async def send_to(producer: AIOKafkaProducer, topic: str, partition: int, msg: Message) -> str:
    meta = await producer.send_and_wait(
        topic,
        encode_value(msg),
        key=encode_key(msg),
        headers=encode_headers(msg),
        partition=partition,
    )
    return f"{meta.partition}:{meta.offset}"


async def push(ws: ClientConnection, timeout: float = NOTICE) -> dict[str, Any]:
    while True:
        body = await recv_json(ws, timeout)
        if "meta" in body:
            return body


async def pushes_until(ws: ClientConnection, marker: Message) -> list[str]:
    """Positions of every push up to and including the marker."""
    positions: list[str] = []
    while True:
        body = await push(ws)
        positions.append(body["meta"]["position"])
        if body["meta"]["message_id"] == marker.message_id:
            return positions


async def test_added_partitions_are_read_from_their_first_offset_once(
    infra: Infra, topic: str, start_service: ServiceFactory, admin: AIOKafkaAdminClient
) -> None:
    edge = start_service("edge", infra.env(topic, **CHECK))
    # An edge that checks only hourly: it goes on without the added partitions.
    slow = start_service(
        "edge",
        infra.env(topic, ROOMCAST_EDGE__PARTITION_CHECK_INTERVAL="3600"),
        name="edge-slow",
    )
    ws, hello = await connect(edge, token=token())
    assert hello["position"] == "0:-1"

    await admin.create_partitions({topic: NewPartitions(total_count=3)})
    async with producer_seeing(infra.kafka_bootstrap, topic, 3) as producer:
        # Published before the edge may have noticed the partitions: nothing is lost.
        sent = {p: [message({"p": p, "i": i}) for i in range(3)] for p in (1, 2)}
        for partition, msgs in sent.items():
            for msg in msgs:
                await send_to(producer, topic, partition, msg)
        got: dict[int, list[str]] = {1: [], 2: []}
        positions: list[str] = []
        for _ in range(6):
            body = await push(ws)
            partition = int(body["meta"]["position"].split(":")[0])
            got[partition].append(body["meta"]["message_id"])
            positions.append(body["meta"]["position"])
        for partition, msgs in sent.items():
            assert got[partition] == [m.message_id for m in msgs]
        # ... from their first offset, and nothing twice.
        assert sorted(positions) == [f"{p}:{o}" for p in (1, 2) for o in range(3)]
        marker = message("marker")
        await send_to(producer, topic, 0, marker)
        assert await pushes_until(ws, marker) == ["0:0"]

        # A client that saw the first message of partition 2 reconnects: this edge
        # reads partition 2, replays what followed it and says so.
        vector = "0:0,1:2,2:0"
        again, hello = await connect(edge, token=token(), since=vector)
        assert hello["recovered"] is True
        assert hello["position"] == "0:0,1:2,2:2"
        replayed = [(await push(again))["meta"]["message_id"] for _ in range(2)]
        assert replayed == [m.message_id for m in sent[2][1:]]
        # The edge that does not read partition 2 yet cannot know what followed.
        other, hello = await connect(slow, token=token(), since=vector)
        assert hello["recovered"] is False
        assert hello["position"] == "0:0"
        # ... while for the partition it reads it still answers honestly.
        covered, hello = await connect(slow, token=token(), since="0:-1")
        assert hello["recovered"] is True
        assert (await push(covered))["meta"]["message_id"] == marker.message_id

        live = message("after")
        await send_to(producer, topic, 2, live)
        assert (await push(again))["meta"]["message_id"] == live.message_id
        assert (await push(ws))["meta"]["message_id"] == live.message_id
    for client in (ws, again, other, covered):
        await client.close()


async def _end_offset(bootstrap: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    except KafkaError:
        return None
    finally:
        await consumer.stop()


async def recreate(admin: AIOKafkaAdminClient, bootstrap: str, topic: str) -> None:
    """Delete the topic and wait until a new, empty one stands in its place.

    KRaft deletes asynchronously, and the broker may auto-create the topic again as
    soon as a client (the edge) asks for it: either way, poll until the topic's
    partition 0 starts again from offset 0.
    """
    await admin.delete_topics([topic])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + NOTICE
    while True:
        if topic not in await admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(topic, 1, 1)])
        elif await _end_offset(bootstrap, topic) == 0:
            return
        assert loop.time() < deadline, f"{topic} was not re-created"
        await asyncio.sleep(0.3)


async def test_a_recreated_topic_resets_the_history_and_keeps_pushing(
    infra: Infra, topic: str, start_service: ServiceFactory, admin: AIOKafkaAdminClient
) -> None:
    edge = start_service("edge", infra.env(topic, **CHECK))
    room = f"room-{uuid.uuid4().hex[:6]}"
    ws, hello = await connect(edge, token=token(), roomIds=room)
    async with producer_seeing(infra.kafka_bootstrap, topic, 1) as producer:
        before = [message({"old": i}, room=room) for i in range(5)]
        for msg in before:
            await send_to(producer, topic, 0, msg)
    assert [(await push(ws))["meta"]["position"] for _ in before] == [f"0:{i}" for i in range(5)]
    old_vectors = ["0:4", "0:1", "0:-1"]
    for vector in old_vectors:
        probe, hello = await connect(edge, token=token(), roomIds=room, since=vector)
        assert hello["recovered"] is True
        await probe.close()

    await recreate(admin, infra.kafka_bootstrap, topic)
    async with producer_seeing(infra.kafka_bootstrap, topic, 1) as producer:
        after = [message({"new": i}, room=room) for i in range(3)]
        for msg in after:
            assert await send_to(producer, topic, 0, msg) == f"0:{after.index(msg)}"
    # The connected client gets the new messages, although their offsets were seen.
    got = [await push(ws) for _ in after]
    assert [b["meta"]["message_id"] for b in got] == [m.message_id for m in after]
    assert [b["meta"]["position"] for b in got] == ["0:0", "0:1", "0:2"]

    # Every vector from before the reset is answered honestly.
    for vector in old_vectors:
        again, hello = await connect(edge, token=token(), roomIds=room, since=vector)
        assert hello["recovered"] is False, vector
        # (the broker may have auto-created the topic with more partitions)
        assert hello["position"].split(",")[0] == "0:2"
        await again.close()
    # A vector beyond the new offsets names old records: the new ones are replayed,
    # not skipped as if the client had them.
    again, hello = await connect(edge, token=token(), roomIds=room, since="0:4")
    replayed = [(await push(again))["meta"]["message_id"] for _ in after]
    assert replayed == [m.message_id for m in after]
    await again.close()
    await ws.close()
