"""Helpers for ws-edge tests: tokens, Kafka records in the wire format, WebSocket clients.

Records are produced straight to Kafka with roomcast_core.wire (no publisher service),
clients are the `websockets` library, and the edge runs as its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import websockets
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import ClientConnection

from roomcast_core.tokens import TokenIssuer
from roomcast_core.wire import Message, encode_headers, encode_key, encode_value, now_time
from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra
from tests.streams import StreamPublisher, stream_publisher

SECRET = "test-secret-0123456789abcdefghijklmnop"  # the one infra.env() configures
WAIT = 20.0  # generous: the test machine is small and shared


def token(
    rooms: Sequence[str] | None = None,
    topics: Sequence[str] | None = None,
    ttl: int = 600,
    subject: str = "user-1",
) -> str:
    return (
        TokenIssuer("HS256", SECRET)
        .issue(subject, "device-1", ttl, rooms=rooms, topics=topics)
        .token
    )


def token_and_jti(**kwargs: Any) -> tuple[str, str]:
    issued = TokenIssuer("HS256", SECRET).issue("user-1", "device-1", 600, **kwargs)
    return issued.token, issued.claims.jti


def message(
    payload: Any = None,
    *,
    topic: str | None = None,
    type_: str | None = None,
    room: str | None = None,
    message_id: str | None = None,
) -> Message:
    return Message(
        topic=topic,
        type=type_,
        room=room,
        payload={"n": 0} if payload is None else payload,
        message_id=message_id or uuid.uuid4().hex,
        receive_time=now_time(),
    )


class Publisher:
    """Writes roomcast records to Kafka the way the publisher service does."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(self, msg: Message) -> str:
        meta = await self.producer.send_and_wait(
            self.topic, encode_value(msg), key=encode_key(msg), headers=encode_headers(msg)
        )
        return f"{meta.partition}:{meta.offset}"

    async def send_many(self, msgs: Sequence[Message]) -> list[str]:
        futures = [
            await self.producer.send(
                self.topic, encode_value(m), key=encode_key(m), headers=encode_headers(m)
            )
            for m in msgs
        ]
        return [f"{m.partition}:{m.offset}" for m in await asyncio.gather(*futures)]

    async def send_raw(self, value: bytes, key: bytes = b"*") -> None:
        await self.producer.send_and_wait(self.topic, value, key=key)


class StreamBusPublisher(Publisher):
    """The same calls on the Redis Streams bus, appending as a backend would."""

    def __init__(self, streams: StreamPublisher, topic: str) -> None:
        self.streams = streams
        self.topic = topic

    async def send(self, msg: Message) -> str:
        return await self.streams.send(msg)

    async def send_many(self, msgs: Sequence[Message]) -> list[str]:
        return await self.streams.send_many(msgs)

    async def send_raw(self, value: bytes, key: bytes = b"*") -> None:
        await self.streams.send_raw(value, key)


@contextlib.asynccontextmanager
async def bus_publisher(infra: Infra, topic: str, partitions: int = 3) -> AsyncIterator[Publisher]:
    """Writes records to whichever bus `infra` runs on."""
    if infra.bus == "redis":
        streams = stream_publisher(infra.redis_url, topic, partitions)
        try:
            yield StreamBusPublisher(streams, topic)
        finally:
            await streams.close()
        return
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        yield Publisher(producer, topic)
    finally:
        await producer.stop()


@pytest_asyncio.fixture
async def publisher(infra: Infra, topic: str) -> AsyncIterator[Publisher]:
    if infra.bus == "redis":
        async with bus_publisher(infra, topic) as streams:
            yield streams
        return
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        yield Publisher(producer, topic)
    finally:
        await producer.stop()


def ws_url(edge: ServiceProcess, **query: str) -> str:
    base = edge.url.replace("http://", "ws://") + "/ws"
    if not query:
        return base
    return base + "?" + urllib.parse.urlencode(query)


async def connect(
    edge: ServiceProcess, options: dict[str, Any] | None = None, **query: str
) -> tuple[ClientConnection, dict[str, Any]]:
    """Open a client (no automatic pings: those would count as life) and read `connected`."""
    settings: dict[str, Any] = {"open_timeout": WAIT, "max_queue": None, "ping_interval": None}
    ws = await websockets.connect(ws_url(edge, **query), **{**settings, **(options or {})})
    hello = await recv_json(ws)
    assert hello["action"] == "connected", hello
    return ws, hello


async def recv_json(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    body = json.loads(raw)
    assert isinstance(body, dict)
    return body


async def request(
    ws: ClientConnection, action: str, params: dict[str, Any] | None = None, request_id: str = "r1"
) -> dict[str, Any]:
    body: dict[str, Any] = {"request_id": request_id, "timestamp": 1, "action": action}
    if params is not None:
        body["params"] = params
    await ws.send(json.dumps(body))
    return await recv_reply(ws, request_id)


async def recv_reply(ws: ClientConnection, request_id: str) -> dict[str, Any]:
    while True:
        body = await recv_json(ws)
        if body.get("request_id") == request_id and "action" in body:
            return body


async def expect_nothing(ws: ClientConnection, seconds: float = 1.0) -> None:
    """No push arrives within `seconds` (used after a marker proved delivery is flowing)."""
    try:
        got = await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return
    pytest.fail(f"unexpected frame {got!r}")


async def pushes_until(ws: ClientConnection, marker_id: str) -> list[dict[str, Any]]:
    """Every push up to and including the one whose message_id is marker_id."""
    seen: list[dict[str, Any]] = []
    while True:
        body = await recv_json(ws)
        if "meta" not in body:
            continue
        seen.append(body)
        if body["meta"]["message_id"] == marker_id:
            return seen


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def metric(edge: ServiceProcess, name: str) -> float:
    """Sum of one metric's samples (all label sets) from /metrics."""
    _, body = http_get(edge.url + "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class SharedEdge:
    """One edge process and topic shared by a module's tests (starting one costs seconds)."""

    edge: ServiceProcess
    topic: str


@contextlib.contextmanager
def module_edge(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, **settings: str
) -> Iterator[SharedEdge]:
    """An edge on a topic of its own for a whole module's tests."""
    topic = f"roomcast.test.{uuid.uuid4().hex[:12]}"
    proc = ServiceProcess(
        "edge", infra.env(topic, **settings), Path(tmp_path_factory.mktemp("edge")), name="edge"
    )
    proc.start()
    try:
        yield SharedEdge(proc, topic)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def shared_edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEdge]:
    with module_edge(
        infra,
        tmp_path_factory,
        ROOMCAST_EDGE__MAX_SUBSCRIPTIONS="3",
        ROOMCAST_EDGE__MAX_ROOMS="2",
    ) as shared:
        yield shared


@pytest_asyncio.fixture
async def shared_publisher(infra: Infra, shared_edge: SharedEdge) -> AsyncIterator[Publisher]:
    async with bus_publisher(infra, shared_edge.topic) as publisher:
        yield publisher


async def read_seqs_in_order(ws: ClientConnection, vector: dict[int, int], count: int) -> list[Any]:
    """`count` pushes, each checked to advance the client's vector (no duplicate, in order)."""
    seqs: list[Any] = []
    while len(seqs) < count:
        body: dict[str, Any] = await recv_json(ws, timeout=60)
        if "meta" not in body:
            continue
        partition, offset = (int(x) for x in body["meta"]["position"].split(":"))
        assert offset > vector.get(partition, -1), "a push arrived twice or out of order"
        vector[partition] = offset
        seqs.append(body["payload"]["seq"])
    return seqs
