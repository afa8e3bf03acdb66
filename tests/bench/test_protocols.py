"""The load generator's Centrifugo protocol variant and the Kafka feed's record shape.

A tiny aiohttp server speaks Centrifugo's JSON protocol the way the server does
(connect reply, subscribe replies, newline-joined pushes, `{}` pings that must be
answered): it checks the client side of the variant, not Centrifugo itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from bench.feeds import CENTRIFUGO_CHANNELS_HEADER, KafkaFeed
from bench.loadgen import CENTRIFUGO_PROTOCOL, Dial, LoadGenerator
from bench.messages import ticks_request, wire_record

from roomcast_core import wire

SOCKETS = web.AppKey("sockets", dict)
PONGS = web.AppKey("pongs", list)


async def _centrifugo_like(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    channels: list[str] = []
    async for message in ws:
        if message.type != WSMsgType.TEXT:
            break
        replies = []
        for line in message.data.split("\n"):
            command = orjson.loads(line)
            if command == {}:
                request.app[PONGS].append(1)
            elif "connect" in command:
                if command["connect"]["token"] == "bad":
                    replies.append({"id": command["id"], "error": {"code": 109, "message": "x"}})
                else:
                    replies.append({"id": command["id"], "connect": {"client": "c", "ping": 25}})
            elif "subscribe" in command:
                channel = command["subscribe"]["channel"]
                channels.append(channel)
                request.app[SOCKETS].setdefault(channel, []).append(ws)
                replies.append({"id": command["id"], "subscribe": {}})
        if replies:
            await ws.send_str("\n".join(orjson.dumps(r).decode() for r in replies))
    return ws


@pytest.fixture
async def fake_centrifugo() -> AsyncIterator[tuple[TestServer, web.Application]]:
    app = web.Application()
    app[SOCKETS] = {}
    app[PONGS] = []
    app.router.add_get("/connection/websocket", _centrifugo_like)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, app
    await server.close()


def _push(channel: str, seq: int) -> str:
    record = wire_record(ticks_request("r", seq, "t0000", "trade"), wire.now_time())
    return orjson.dumps({"push": {"channel": channel, "pub": {"data": record}}}).decode()


async def test_centrifugo_clients_connect_subscribe_count_and_answer_pings(
    fake_centrifugo: tuple[TestServer, web.Application],
) -> None:
    server, app = fake_centrifugo
    url = str(server.make_url("/connection/websocket")).replace("http", "ws")
    dials = [
        Dial(url, 10, "ok", ("a.trade", "b.quote")),
        Dial(url, 11, "ok", ("b.quote",)),
        Dial(url, 12, "bad", ("a.trade",)),
    ]
    with LoadGenerator(1, None) as load:
        result = await load.connect(dials, timeout=10, protocol=CENTRIFUGO_PROTOCOL)
        assert (result["opened"], result["failed"]) == (2, 1)
        sockets: dict[str, list[web.WebSocketResponse]] = app[SOCKETS]
        assert {k: len(v) for k, v in sockets.items()} == {"a.trade": 1, "b.quote": 2}
        # two pushes in one frame, one on its own, and a ping in the middle
        for ws in sockets["b.quote"]:
            await ws.send_str(_push("b.quote", 1) + "\n" + _push("b.quote", 2))
            await ws.send_str("{}")
        await sockets["a.trade"][0].send_str(_push("a.trade", 3))
        for _ in range(100):
            count, _last = await load.progress()
            if count == 5 and len(app[PONGS]) == 2:
                break
            await asyncio.sleep(0.05)
        stats = await load.stats()
        assert dict(zip(stats.keys, stats.counts, strict=True)) == {10: 3, 11: 2}
        assert len(stats.latencies) == 5
        assert len(app[PONGS]) == 2
        await load.close()


class _Batch:
    def __init__(self, room: int) -> None:
        self.records: list[dict[str, Any]] = []
        self.room = room

    def append(self, *, key: bytes, value: bytes, timestamp: None, headers: Any) -> object | None:
        if len(self.records) >= self.room:
            return None
        self.records.append({"key": key, "value": value, "headers": headers})
        return object()


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, _Batch]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> _Batch:
        return _Batch(room=4)

    async def send_batch(
        self, batch: _Batch, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        self.sent.append((topic, partition, batch))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.mark.parametrize("for_centrifugo", [False, True])
async def test_the_kafka_feed_writes_wire_records_keyed_by_topic(for_centrifugo: bool) -> None:
    producer = _Producer()
    feed = KafkaFeed(producer, "bench.t", centrifugo_channels=for_centrifugo)
    requests = [ticks_request("r", i, f"t{i % 3:04d}", "quote") for i in range(10)]
    await feed.publish(requests)
    records = [(p, r) for _, p, batch in producer.sent for r in batch.records]
    assert len(records) == 10
    by_key: dict[bytes, set[int]] = {}
    for partition, record in records:
        by_key.setdefault(record["key"], set()).add(partition)
        message = wire.decode_value(record["value"])
        assert record["key"] == str(message.topic).encode()
        headers = dict(record["headers"])
        assert headers["roomcast-message-id"] == message.message_id.encode()
        if for_centrifugo:
            assert headers[CENTRIFUGO_CHANNELS_HEADER] == f"{message.topic}.quote".encode()
        else:
            assert CENTRIFUGO_CHANNELS_HEADER not in headers
    # one partition per key, as Kafka's own partitioner would choose
    assert all(len(partitions) == 1 for partitions in by_key.values())
    assert {topic for topic, _, _ in producer.sent} == {"bench.t"}
