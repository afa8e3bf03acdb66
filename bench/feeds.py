"""Feeds: how the driver hands the same messages to each server under test.

- PublisherFeed: through roomcast's publisher (POST /v1/messages, /v1/messages/batch);
  the publisher stamps receive_time and produces to Kafka, the edge consumes.
- KafkaFeed: straight to Kafka in the wire format (pure fan-out, no publisher).
- PeerFeed: the same records, receive_time stamped by the driver, POSTed to a peer's
  /publish endpoint on the port its clients use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp
from aiokafka import AIOKafkaProducer

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


class KafkaFeed:
    name = "kafka-direct"

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, requests: Sequence[dict[str, Any]]) -> None:
        now = wire.now_time()
        pending = []
        for request in requests:
            message = wire_message(request, now)
            pending.append(
                await self._producer.send(
                    self._topic,
                    value=wire.encode_value(message),
                    key=wire.encode_key(message),
                    headers=wire.encode_headers(message),
                )
            )
        for future in pending:
            await future
