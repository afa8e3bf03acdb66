"""Feeds: how the driver hands the same messages to each server under test.

- PublisherFeed: through roomcast's publisher (POST /v1/messages, /v1/messages/batch);
  the publisher stamps receive_time and produces to Kafka, the edge consumes.
- KafkaFeed: straight to Kafka in the wire format (pure fan-out, no publisher); for
  Centrifugo's Kafka consumer (publication data mode) each record also names its
  channel in a `centrifugo-channels` header: same topic shape, same value bytes.
- PeerFeed: the same records, receive_time stamped by the driver, POSTed to a peer's
  /publish endpoint on the port its clients use.
- CentrifugoApiFeed: the same records as publication data through Centrifugo's HTTP
  API (`/api/batch` of `publish` commands).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from bench.messages import wire_message, wire_record
from roomcast_core import wire

BATCH_LIMIT = 1000


class Feed(Protocol):
    name: str

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None: ...


class FeedError(RuntimeError):
    """A server refused messages: the run's counts would be meaningless."""


class PeerFeed:
    name = "http-post"

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._url = base_url + "/publish"

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None:
        now = wire.now_time()
        body = {"records": [wire_record(r, now) for r in requests]}
        async with self._session.post(self._url, json=body) as response:
            if response.status != 202:
                raise FeedError(f"peer answered {response.status}: {await response.text()}")


class PublisherFeed:
    name = "publisher"

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base = base_url

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None:
        if len(requests) == 1:
            await self._post("/v1/messages", requests[0])
            return
        for start in range(0, len(requests), BATCH_LIMIT):
            chunk = list(requests[start : start + BATCH_LIMIT])
            await self._post("/v1/messages/batch", {"messages": chunk})

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        async with self._session.post(self._base + path, json=body) as response:
            if response.status != 202:
                raise FeedError(f"publisher answered {response.status}: {await response.text()}")


CENTRIFUGO_CHANNELS_HEADER = "centrifugo-channels"


def centrifugo_channel(topic: str | None, type_: str | None) -> str:
    """Centrifugo's name for topic:type (':' is its namespace boundary, so '.' here)."""
    return f"{topic}.{type_}"


class KafkaFeed:
    """Records in the wire format, produced in one batch per partition per call.

    Batches skip aiokafka's per-record send path, so the driver can offer tens of
    thousands of records per second from the load core; the partition is the one Kafka's
    default partitioner picks for the record's key, as the publisher's producer does.
    """

    name = "kafka-direct"

    def __init__(
        self, producer: AIOKafkaProducer, topic: str, *, centrifugo_channels: bool = False
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._centrifugo = centrifugo_channels
        self._partitions: list[int] = []
        self._partition_of: dict[bytes, int] = {}

    def _partition(self, key: bytes) -> int:
        partition = self._partition_of.get(key)
        if partition is None:
            index = (murmur2(key) & 0x7FFFFFFF) % len(self._partitions)
            partition = self._partition_of[key] = self._partitions[index]
        return partition

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None:
        if not self._partitions:
            self._partitions = sorted(await self._producer.partitions_for(self._topic))
        now = wire.now_time()
        batches: dict[int, Any] = {}
        pending = []
        for request in requests:
            message = wire_message(request, now)
            key = wire.encode_key(message)
            headers = wire.encode_headers(message)
            if self._centrifugo:
                channel = centrifugo_channel(message.topic, message.type)
                headers.append((CENTRIFUGO_CHANNELS_HEADER, channel.encode()))
            value = wire.encode_value(message)
            partition = self._partition(key)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                pending.append(
                    await self._producer.send_batch(batch, self._topic, partition=partition)
                )
                batch = batches[partition] = self._producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        for partition, batch in batches.items():
            pending.append(await self._producer.send_batch(batch, self._topic, partition=partition))
        for future in pending:
            await future


class CentrifugoApiFeed:
    name = "centrifugo-http-api"

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str) -> None:
        self._session = session
        self._url = base_url + "/api/batch"
        self._headers = {"X-API-Key": api_key}

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None:
        now = wire.now_time()
        commands = []
        for request in requests:
            record = wire_record(request, now)
            channel = centrifugo_channel(record.get("topic"), record.get("type"))
            commands.append({"publish": {"channel": channel, "data": record}})
        for start in range(0, len(commands), BATCH_LIMIT):
            body = {"commands": commands[start : start + BATCH_LIMIT]}
            async with self._session.post(self._url, json=body, headers=self._headers) as response:
                text = await response.text()
                if response.status != 200:
                    raise FeedError(f"centrifugo answered {response.status}: {text}")
                if '"error"' in text:
                    raise FeedError(f"centrifugo refused a publish: {text[:300]}")
