"""HTTP calls to a publisher and a separate consumer reading back what landed in Kafka."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from roomcast_core import wire

CLIENT_TIMEOUT = aiohttp.ClientTimeout(total=90)  # generous: the box is shared and slow


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


async def post(
    url: str,
    body: Any = None,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    async with (
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session,
        session.post(url, json=body if data is None else None, data=data, headers=headers) as r,
    ):
        text = await r.read()
        try:
            parsed: Any = await r.json(content_type=None) if text else None
        except ValueError:
            parsed = text
        return Reply(r.status, parsed, dict(r.headers))


async def get(url: str) -> Reply:
    async with (
        aiohttp.ClientSession(timeout=CLIENT_TIMEOUT) as session,
        session.get(url) as r,
    ):
        text = await r.text()
        try:
            parsed: Any = await r.json(content_type=None)
        except ValueError:
            parsed = text
        return Reply(r.status, parsed, dict(r.headers))


@dataclass(frozen=True)
class Landed:
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    message: wire.Message

    @property
    def position(self) -> str:
        return wire.position(self.partition, self.offset)


async def read_topic(bootstrap: str, topic: str, timeout: float = 60) -> list[Landed]:
    """Every record of the topic, in partition then offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        count = await partition_count(bootstrap, topic)
        assert count, f"topic {topic} does not exist"
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        landed: list[Landed] = []
        async with asyncio.timeout(timeout):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        landed.append(
                            Landed(
                                partition=record.partition,
                                offset=record.offset,
                                key=record.key,
                                headers={k: bytes(v) for k, v in record.headers},
                                message=wire.decode_value(record.value),
                            )
                        )
        return sorted(landed, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def partition_count(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
        return len(described["partitions"]) if described["error_code"] == 0 else 0
    finally:
        await admin.close()
