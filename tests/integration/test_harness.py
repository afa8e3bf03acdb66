"""The harness itself: a real Kafka carries records with headers, a real Redis keeps data."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from roomcast_harness.kafka_broker import KafkaBroker
from roomcast_harness.procs import port_open
from roomcast_harness.redis_server import RedisServer


async def test_kafka_round_trip_with_headers(kafka_bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic,
            value=b'{"hello":"kafka"}',
            key=b"room-1",
            headers=[("traceparent", b"00-abc-def-01"), ("x-empty", b"")],
        )
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, sent.partition)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()

    assert record.offset == sent.offset
    assert record.key == b"room-1"
    assert record.value == b'{"hello":"kafka"}'
    assert list(record.headers) == [("traceparent", b"00-abc-def-01"), ("x-empty", b"")]


async def test_redis_round_trip_with_ttl(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    key = f"harness:{uuid.uuid4().hex}"
    try:
        await client.set(key, "value", ex=30)
        assert await client.get(key) == b"value"
        ttl = await client.ttl(key)
        assert 0 < ttl <= 30
    finally:
        await client.delete(key)
        await client.aclose()


async def test_redis_restart_keeps_port(own_redis: RedisServer) -> None:
    port = own_redis.port
    own_redis.stop()
    assert not port_open("127.0.0.1", port)
    own_redis.start()
    assert own_redis.port == port
    client = aioredis.from_url(own_redis.url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()


async def test_kafka_restart_keeps_records(own_kafka: KafkaBroker, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=own_kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"durable", key=b"k")
    finally:
        await producer.stop()

    own_kafka.stop()
    assert not port_open("127.0.0.1", own_kafka.port)
    own_kafka.start()

    consumer = AIOKafkaConsumer(bootstrap_servers=own_kafka.bootstrap_servers)
    await consumer.start()
    try:
        partition = TopicPartition(topic, sent.partition)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert record.value == b"durable"
