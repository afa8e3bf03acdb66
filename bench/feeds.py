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
- RedisStreamFeed: straight to the Redis Streams bus in its wire format (the append
  script of roomcast_core.stream_wire), the way KafkaFeed produces straight to Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from bench.messages import wire_message, wire_record
from roomcast_core import stream_wire, wire

BATCH_LIMIT = 1000
API_BATCH = 10


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


Record = tuple[bytes, bytes, wire.Headers]


@dataclass
class _Pending:
    """Records waiting for their partition's next batch, and the calls waiting on them."""

    records: list[Record] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class KafkaFeed:
    """Records in the wire format, produced in batches the feed builds itself.

    One batch per partition is in flight at a time; whatever arrives meanwhile goes into
    the next one, so batches grow with the rate and the feed keeps up with it at the
    cost of one append per record (aiokafka's per-record send path costs several times
    more, on the core the clients and the broker share). The partition is the one
    Kafka's default partitioner picks for the record's key, as the publisher's does.
    A call returns once all its records are acknowledged.
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
        self._pending: dict[int, _Pending] = {}
        self._pumps: dict[int, asyncio.Task[None]] = {}

    def _partition(self, key: bytes) -> int:
        partition = self._partition_of.get(key)
        if partition is None:
            index = (murmur2(key) & 0x7FFFFFFF) % len(self._partitions)
            partition = self._partition_of[key] = self._partitions[index]
        return partition

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None:
        if not self._partitions:
            self._partitions = sorted(await self._producer.partitions_for(self._topic))
        loop = asyncio.get_running_loop()
        now = wire.now_time()
        grouped: dict[int, list[Record]] = {}
        for request in requests:
            message = wire_message(request, now)
            key = wire.encode_key(message)
            headers = wire.encode_headers(message)
            if self._centrifugo:
                channel = centrifugo_channel(message.topic, message.type)
                headers.append((CENTRIFUGO_CHANNELS_HEADER, channel.encode()))
            grouped.setdefault(self._partition(key), []).append(
                (key, wire.encode_value(message), headers)
            )
        done: list[asyncio.Future[None]] = []
        for partition, records in grouped.items():
            pending = self._pending.setdefault(partition, _Pending())
            pending.records.extend(records)
            waiter: asyncio.Future[None] = loop.create_future()
            pending.waiters.append(waiter)
            done.append(waiter)
            pump = self._pumps.get(partition)
            if pump is None or pump.done():
                self._pumps[partition] = asyncio.create_task(self._pump(partition))
        await asyncio.gather(*done)

    async def _pump(self, partition: int) -> None:
        pending = self._pending[partition]
        producer = self._producer
        while pending.records:
            records, waiters = pending.records, pending.waiters
            pending.records, pending.waiters = [], []
            try:
                futures = []
                batch = producer.create_batch()
                for key, value, headers in records:
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        futures.append(
                            await producer.send_batch(batch, self._topic, partition=partition)
                        )
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None, headers=headers)
                futures.append(await producer.send_batch(batch, self._topic, partition=partition))
                await asyncio.gather(*futures)
            except Exception as exc:  # every waiting call gets the failure, none hangs
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


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
        # Publishing is synchronous in its API (each publish is queued to every subscriber
        # before the answer) and its HTTP server closes a request after 10 s: a burst to
        # thousands of clients goes in small batches.
        for start in range(0, len(commands), API_BATCH):
            body = {"commands": commands[start : start + API_BATCH]}
            async with self._session.post(self._url, json=body, headers=self._headers) as response:
                text = await response.text()
                if response.status != 200:
                    raise FeedError(f"centrifugo answered {response.status}: {text}")
                if '"error"' in text:
                    raise FeedError(f"centrifugo refused a publish: {text[:300]}")


class RedisStreamFeed:
    """Entries appended with the bus's own script, one call per partition and chunk.

    Calls are not serialised against each other: Redis runs each script whole, so
    offsets stay dense per stream whoever appends; a call's records for one partition
    go out chunk after chunk, in order. A call returns once Redis answered every chunk.
    """

    name = "redis-streams-direct"

    def __init__(
        self, client: aioredis.Redis, prefix: str, partitions: int = 3, max_len: int = 100_000
    ) -> None:
        self._client = client
        self.prefix = prefix
        self._partitions = partitions
        self._max_len = max_len
        self._append = client.register_script(stream_wire.APPEND_SCRIPT)
        self._partition_of: dict[bytes, int] = {}

    def _partition(self, key: bytes) -> int:
        partition = self._partition_of.get(key)
        if partition is None:
            partition = stream_wire.partition_for(key, self._partitions)
            self._partition_of[key] = partition
        return partition

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None:
        now = wire.now_time()
        grouped: dict[int, list[bytes]] = {}
        for request in requests:
            message = wire_message(request, now)
            key = wire.encode_key(message)
            grouped.setdefault(self._partition(key), []).extend(
                (key, wire.encode_value(message), b"", b"")
            )
        counts = await asyncio.gather(
            *(self._append_all(partition, argv) for partition, argv in grouped.items())
        )
        if sum(counts) != len(requests):
            raise FeedError(f"redis appended {sum(counts)} of {len(requests)} entries")

    async def _append_all(self, partition: int, argv: list[bytes]) -> int:
        """One partition's entries, chunk after chunk so they keep their order."""
        keys = [
            stream_wire.stream_key(self.prefix, partition),
            stream_wire.counter_key(self.prefix, partition),
        ]
        appended = 0
        for start in range(0, len(argv), 4 * BATCH_LIMIT):
            chunk = argv[start : start + 4 * BATCH_LIMIT]
            # no age bound: the run is short, the length bound keeps memory in check
            offsets = await self._append(keys=keys, args=[self._max_len, 0, *chunk])
            appended += len(offsets)
        return appended
