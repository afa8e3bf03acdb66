"""What only the Redis Streams bus has: backends appending directly, trimming, restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import websockets
from websockets.asyncio.client import ClientConnection

from roomcast_core import wire
from roomcast_core.stream_wire import APPEND_SCRIPT, counter_key, partition_for, stream_key
from roomcast_edge.domain.positions import format_vector
from roomcast_harness.redis_server import RedisServer
from tests.conftest import NO_KAFKA, Infra, ServiceFactory
from tests.integration.edge.conftest import (
    WAIT,
    connect,
    message,
    metric,
    read_seqs_in_order,
    recv_json,
    token,
)
from tests.integration.publisher.helpers import post
from tests.streams import stream_publisher


def _infra(redis_url: str) -> Infra:
    return Infra(redis_url, NO_KAFKA, bus="redis")


async def _push(ws: ClientConnection) -> dict[str, Any]:
    while True:
        body = await recv_json(ws)
        if "meta" in body:
            return body


async def _backend_append(client: aioredis.Redis, prefix: str, msg: wire.Message) -> str:
    """What a backend does, from the documented format alone: the script, Kafka's partition."""
    key = wire.encode_key(msg)
    partition = partition_for(key, 3)
    offsets: Any = await client.eval(
        APPEND_SCRIPT,
        2,
        stream_key(prefix, partition),
        counter_key(prefix, partition),
        10_000,
        0,
        key,
        wire.encode_value(msg),
        "",
        "",
    )
    return f"{partition}:{offsets[0]}"


async def test_backend_appends_are_delivered_and_malformed_entries_skipped(
    aof_redis_url: str, topic: str, start_service: ServiceFactory
) -> None:
    edge = start_service("edge", _infra(aof_redis_url).env(topic))
    client = aioredis.Redis.from_url(aof_redis_url)
    try:
        ws, _ = await connect(edge, token=token())
        first = message({"from": "backend"})
        position = await _backend_append(client, topic, first)
        push = await _push(ws)
        assert push["meta"]["message_id"] == first.message_id
        assert push["meta"]["position"] == position
        assert push["payload"] == {"from": "backend"}

        before = metric(edge, "roomcast_edge_undecodable_total")
        broadcast = stream_key(topic, partition_for(wire.BROADCAST_KEY.encode(), 3))
        # No offset at all, an offset that is no number, then a right offset with junk.
        await client.xadd(broadcast, {"value": wire.encode_value(message())})
        await client.xadd(broadcast, {"offset": "seven", "value": b"{}"})
        offsets: Any = await client.eval(
            APPEND_SCRIPT, 2, broadcast, broadcast + ":offset", 10_000, 0, b"*", b"[1]", "", ""
        )
        assert len(offsets) == 1
        after = message({"still": "flowing"})
        await _backend_append(client, topic, after)
        push = await _push(ws)
        assert push["meta"]["message_id"] == after.message_id
        assert metric(edge, "roomcast_edge_undecodable_total") == before + 3
        # The skipped offset is no gap: a vector past it is recovered.
        again, hello = await connect(edge, token=token(), since=push["meta"]["position"])
        assert hello["recovered"] is True
        await again.close()
        await ws.close()
    finally:
        await client.aclose()


async def test_recovered_false_when_the_stream_was_trimmed_past_since(
    aof_redis_url: str, topic: str, start_service: ServiceFactory
) -> None:
    client = aioredis.Redis.from_url(aof_redis_url)
    try:
        msgs = [message({"seq": i}) for i in range(10)]
        for msg in msgs:
            await _backend_append(client, topic, msg)
        stream = stream_key(topic, partition_for(wire.BROADCAST_KEY.encode(), 3))
        partition = stream.rsplit("{", 1)[1].rstrip("}")
        await client.xtrim(stream, maxlen=3, approximate=False)
        # An edge starting now fills its history from what the stream kept.
        edge = start_service("edge", _infra(aof_redis_url).env(topic))
        ws, hello = await connect(edge, token=token(), since=f"{partition}:2")
        assert hello["recovered"] is False
        assert [(await _push(ws))["payload"]["seq"] for _ in range(3)] == [7, 8, 9]
        covered, hello = await connect(edge, token=token(), since=f"{partition}:7")
        assert hello["recovered"] is True
        assert [(await _push(covered))["payload"]["seq"] for _ in range(2)] == [8, 9]
        for socket in (ws, covered):
            await socket.close()
    finally:
        await client.aclose()


async def test_redis_killed_and_restarted_with_aof_loses_and_doubles_nothing(
    tmp_path: Path, topic: str, start_service: ServiceFactory
) -> None:
    redis = RedisServer(tmp_path / "bus-redis", appendonly=True)
    redis.start()
    try:
        env = _infra(redis.url).env(topic, ROOMCAST_REDIS__TIMEOUT="1")
        publisher = start_service("publisher", env)
        edge = start_service("edge", env)
        ws, _ = await connect(edge, token=token(rooms=["r"]), roomIds="r")
        accepted: list[str] = []
        unknown: list[str] = []

        async def publish(n: int) -> int:
            message_id = f"m-{n}-{uuid.uuid4().hex[:6]}"
            reply = await post(
                publisher.url + "/v1/messages",
                {"room": "r", "payload": n, "message_id": message_id},
            )
            if reply.status == 202:
                accepted.append(message_id)
            elif reply.status == 504:
                unknown.append(message_id)
            else:
                assert reply.status == 503, reply.body
            return reply.status

        for n in range(20):
            await publish(n)
        redis.kill()
        for n in range(20, 25):
            await publish(n)  # refused or unknown while Redis is gone
        redis.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        n = 25
        while len(accepted) < 60 and loop.time() < deadline:
            if await publish(n) != 202:
                await asyncio.sleep(0.1)  # the publisher notices Redis is back within a second
            n += 1
        assert len(accepted) >= 60, "publishing never resumed after the restart"

        received: list[str] = []
        positions: list[int] = []
        while accepted[-1] not in received:
            push = await _push(ws)
            received.append(push["meta"]["message_id"])
            positions.append(int(push["meta"]["position"].split(":")[1]))
        assert len(received) == len(set(received)), "a push arrived twice"
        assert positions == sorted(positions)
        assert set(accepted) <= set(received), "an accepted message was lost"
        assert set(received) <= set(accepted) | set(unknown)
        await ws.close()
    finally:
        redis.stop()


async def test_a_stream_that_lost_its_data_is_read_again_from_its_new_offsets(
    aof_redis_url: str, topic: str, start_service: ServiceFactory
) -> None:
    edge = start_service("edge", _infra(aof_redis_url).env(topic))
    client = aioredis.Redis.from_url(aof_redis_url)
    try:
        ws, _ = await connect(edge, token=token())
        before = [message({"seq": i}) for i in range(5)]
        for msg in before:
            await _backend_append(client, topic, msg)
        got = [await _push(ws) for _ in before]
        assert [p["meta"]["message_id"] for p in got] == [m.message_id for m in before]
        partition = partition_for(wire.BROADCAST_KEY.encode(), 3)
        # What a Redis restarted without persistence looks like: stream and counter gone.
        await client.delete(stream_key(topic, partition), counter_key(topic, partition))
        after = [message({"seq": 5 + i}) for i in range(2)]
        positions = [await _backend_append(client, topic, msg) for msg in after]
        assert positions == [f"{partition}:0", f"{partition}:1"]
        got = [await _push(ws) for _ in after]
        assert [p["meta"]["message_id"] for p in got] == [m.message_id for m in after]
        assert [p["meta"]["position"] for p in got] == positions
        await ws.close()
    finally:
        await client.aclose()


async def _old_entries(
    client: aioredis.Redis, topic: str, msgs: list[wire.Message], age_seconds: float
) -> None:
    """Entries as the append script would have left them `age_seconds` ago."""
    partition = partition_for(wire.BROADCAST_KEY.encode(), 3)
    stream, counter = stream_key(topic, partition), counter_key(topic, partition)
    then_ms = int((time.time() - age_seconds) * 1000)
    for n, msg in enumerate(msgs):
        offset = await client.incr(counter) - 1
        fields = {"offset": offset, "key": b"*", "value": wire.encode_value(msg)}
        await client.xadd(stream, fields, id=f"{then_ms}-{n + 1}")  # type: ignore[arg-type]


async def test_start_up_fill_reads_only_what_is_young_enough(
    aof_redis_url: str, topic: str, start_service: ServiceFactory
) -> None:
    client = aioredis.Redis.from_url(aof_redis_url)
    try:
        old = [message({"seq": i}) for i in range(5)]
        await _old_entries(client, topic, old, age_seconds=3600)
        young = [message({"seq": 5 + i}) for i in range(3)]
        for msg in young:
            await _backend_append(client, topic, msg)
        partition = partition_for(wire.BROADCAST_KEY.encode(), 3)
        edge = start_service(
            "edge", _infra(aof_redis_url).env(topic, ROOMCAST_EDGE__HISTORY_AGE="60")
        )
        # The hour-old entries are not in the history...
        assert metric(edge, "roomcast_edge_history_messages") == len(young)
        # ...but the stream still holds them: a vector before them is recovered from it.
        stale, hello = await connect(edge, token=token(), since=f"{partition}:0")
        assert hello["recovered"] is True
        assert [(await _push(stale))["payload"]["seq"] for _ in range(7)] == list(range(1, 8))
        assert metric(edge, "roomcast_edge_archive_records_total") >= 4
        # One that saw every old entry is.
        fresh, hello = await connect(edge, token=token(), since=f"{partition}:4")
        assert hello["recovered"] is True
        assert [(await _push(fresh))["payload"]["seq"] for _ in young] == [5, 6, 7]
        for socket in (stale, fresh):
            await socket.close()
    finally:
        await client.aclose()


async def test_the_append_script_trims_by_length_and_by_age(aof_redis_url: str, topic: str) -> None:
    client = aioredis.Redis.from_url(aof_redis_url)
    try:
        stream, counter = stream_key(topic, 0), counter_key(topic, 0)
        args: list[Any] = []
        for n in range(1000):
            args += [b"k", wire.encode_value(message({"n": n})), "", ""]
        offsets: Any = await client.eval(APPEND_SCRIPT, 2, stream, counter, 100, 0, *args)
        assert offsets == list(range(1000))
        kept = await client.xlen(stream)
        assert 100 <= kept < 1000  # MAXLEN ~: whole nodes go, never below the bound
        broadcasts = partition_for(wire.BROADCAST_KEY.encode(), 3)
        aged = stream_key(topic, broadcasts)
        await _old_entries(client, topic, [message() for _ in range(300)], age_seconds=3600)
        before = await client.xlen(aged)
        assert before == 300
        await client.eval(
            APPEND_SCRIPT,
            2,
            aged,
            counter_key(topic, broadcasts),
            100_000,
            60_000,
            b"*",
            b"{}",
            "",
            "",
        )
        assert await client.xlen(aged) < before  # MINID ~: the hour-old nodes are gone
    finally:
        await client.aclose()


async def test_an_edge_that_fell_behind_the_trimming_tells_its_clients(
    aof_redis_url: str, topic: str, start_service: ServiceFactory
) -> None:
    """Paused (SIGSTOP) while more than MAX_LEN entries are appended, the edge finds
    entries trimmed before it read them: its live clients are closed (1012) before any
    push after the hole, and a `since` inside the hole is answered recovered: false."""
    infra = _infra(aof_redis_url)
    edge = start_service("edge", infra.env(topic))
    room = "behind"
    streams = stream_publisher(aof_redis_url, topic, max_len=100)
    watcher, _ = await connect(edge, token=token(), roomIds=room)
    try:
        await streams.send_many([message({"seq": i}, room=room) for i in range(5)])
        vector: dict[int, int] = {}
        assert await read_seqs_in_order(watcher, vector, 5) == list(range(5))
        os.kill(edge.pid, signal.SIGSTOP)
        try:
            for start in range(5, 1005, 100):  # ten times MAX_LEN, trimmed as it goes
                await streams.send_many(
                    [message({"seq": i}, room=room) for i in range(start, start + 100)]
                )
        finally:
            os.kill(edge.pid, signal.SIGCONT)
        (partition,) = vector
        kept: Any = await streams.client.xrange(stream_key(topic, partition), count=1)
        first_kept = int(kept[0][1][b"offset"])
        assert first_kept > 100  # the stream did drop entries the edge never read

        # The watcher gets what the edge read before the hole, never a push after it.
        async def until_closed() -> None:
            while True:
                body = await recv_json(watcher)
                if "meta" in body:
                    p, offset = (int(x) for x in body["meta"]["position"].split(":"))
                    assert offset == vector[p] + 1, "a push after a hole"
                    vector[p] = offset

        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(until_closed(), WAIT)
        assert (watcher.close_code, watcher.close_reason) == (1012, "service restart")
        assert vector[partition] < first_kept - 1
        assert metric(edge, "roomcast_edge_stream_gaps_total") >= 1

        # Its vector lies in the hole: not recovered, and what is held is replayed.
        since = format_vector(vector)
        again, hello = await connect(edge, token=token(), roomIds=room, since=since)
        assert hello["recovered"] is False
        replayed = (await recv_json(again))["meta"]["position"]
        assert int(replayed.split(":")[1]) >= first_kept
        inside, hello = await connect(
            edge, token=token(), roomIds=room, since=f"{partition}:{first_kept - 50}"
        )
        assert hello["recovered"] is False
        # A client that had seen everything up to the hole's end is served whole.
        whole, hello = await connect(
            edge, token=token(), roomIds=room, since=f"{partition}:{first_kept - 1}"
        )
        assert hello["recovered"] is True
        for socket in (again, inside, whole):
            await socket.close()
    finally:
        await watcher.close()
        await streams.close()
