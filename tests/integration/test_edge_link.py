"""Requests to edges over a real Redis: to one edge, to all, and what no edge answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from roomcast_core.edge_link import (
    REPLY_PREFIX,
    EdgeLinkClient,
    EdgeLinkServer,
    edge_of,
    new_connection_id,
    new_edge_id,
)


async def _held(body: dict[str, Any], edge: str, held: set[str]) -> dict[str, Any] | None:
    connection = str(body.get("connection_id"))
    return {"held": connection, "by": edge} if connection in held else None


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


async def _started(*parts: EdgeLinkServer | EdgeLinkClient) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(part.run()) for part in parts]
    async with asyncio.timeout(10):
        for part in parts:
            await part.ready.wait()
    return tasks


async def _stopped(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_a_connection_id_names_its_edge() -> None:
    edge = new_edge_id()
    assert edge_of(new_connection_id(edge)) == edge
    for foreign in ("", "nodash", "-x", "x-", "a" * 200 + "-b"):
        assert edge_of(foreign) is None


async def test_a_call_reaches_the_edge_named_and_no_other(redis: aioredis.Redis) -> None:
    a, b = new_edge_id(), new_edge_id()
    held = {a: {new_connection_id(a)}, b: {new_connection_id(b)}}

    def server(edge: str) -> EdgeLinkServer:
        async def find(body: dict[str, Any]) -> dict[str, Any] | None:
            return await _held(body, edge, held[edge])

        return EdgeLinkServer(redis, edge, {"find": find})

    asker = EdgeLinkClient(redis)
    tasks = await _started(server(a), server(b), asker)
    try:
        (conn_b,) = held[b]
        reply = await asker.call(b, "find", {"connection_id": conn_b}, timeout=5)
        assert reply == {"edge_id": b, "held": conn_b, "by": b}
        # The edge named does not hold it: no answer, not another edge's.
        assert await asker.call(a, "find", {"connection_id": conn_b}, timeout=0.5) is None
        # No edge listens on that id: None at once, without waiting for the timeout.
        started = asyncio.get_running_loop().time()
        assert await asker.call(new_edge_id(), "find", {}, timeout=30) is None
        assert asyncio.get_running_loop().time() - started < 10
        everyone = await asker.broadcast("find", {"connection_id": conn_b}, timeout=5, expect=1)
        assert [r["by"] for r in everyone] == [b]
    finally:
        await _stopped(tasks)


async def test_a_broadcast_gathers_every_edge_until_enough(redis: aioredis.Redis) -> None:
    edges = [new_edge_id() for _ in range(3)]

    def server(edge: str) -> EdgeLinkServer:
        async def count(body: dict[str, Any]) -> dict[str, Any]:
            return {"n": int(body["n"]) + 1}

        return EdgeLinkServer(redis, edge, {"count": count})

    asker = EdgeLinkClient(redis)
    tasks = await _started(*(server(e) for e in edges), asker)
    try:
        replies = await asker.broadcast("count", {"n": 1}, timeout=10, expect=3)
        assert sorted(r["edge_id"] for r in replies) == sorted(edges)
        assert {r["n"] for r in replies} == {2}
        # An unknown operation is nobody's: no reply, the broadcast ends at its timeout.
        assert await asker.broadcast("nope", {}, timeout=0.3) == []
    finally:
        await _stopped(tasks)


async def test_a_request_cannot_make_an_edge_publish_elsewhere(redis: aioredis.Redis) -> None:
    edge = new_edge_id()

    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return body

    tasks = await _started(EdgeLinkServer(redis, edge, {"echo": echo}))
    listener = redis.pubsub(ignore_subscribe_messages=True)
    await listener.subscribe("victim", REPLY_PREFIX + "mine")
    try:
        for reply_to in ("victim", REPLY_PREFIX + "mine"):
            request = {"op": "echo", "id": 1, "reply_to": reply_to, "body": {"x": 1}}
            await redis.publish("roomcast:edge:" + edge, json.dumps(request))
        got: list[bytes] = []
        async with asyncio.timeout(10):
            while not got:
                message = await listener.get_message(timeout=1)
                if message is not None:
                    assert message["channel"] == (REPLY_PREFIX + "mine").encode()
                    got.append(message["data"])
    finally:
        await listener.aclose()  # type: ignore[no-untyped-call]
        await _stopped(tasks)
