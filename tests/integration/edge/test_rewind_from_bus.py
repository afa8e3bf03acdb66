"""`rewind` reaches past the in-memory history: the latest N the bus still holds.

The edge here forgets messages after two seconds, and keeps thirty per partition:
a room that has been quiet for longer, or whose messages were pushed out by other
rooms' traffic, still gets its latest N on a rewind, then live ones, with no gap
and no duplicate at either seam.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import BUSES, Infra, infra_on
from tests.integration.edge.conftest import (
    SharedEdge,
    bus_publisher,
    connect,
    http_get,
    message,
    metric,
    module_edge,
    recv_json,
    request,
    token,
)


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    return infra_on(request)


@pytest.fixture(scope="module")
def edge(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEdge]:
    with module_edge(
        infra,
        tmp_path_factory,
        ROOMCAST_EDGE__HISTORY_AGE="2",
        ROOMCAST_EDGE__HISTORY_SIZE="30",
        ROOMCAST_EDGE__MAX_ROOMS="3",
    ) as shared:
        yield shared


async def _seqs(ws: ClientConnection, count: int) -> list[Any]:
    """The next `count` pushes' seqs, each checked to be new (no duplicate, in order)."""
    seqs: list[Any] = []
    vector: dict[int, int] = {}
    while len(seqs) < count:
        body = await recv_json(ws)
        if "meta" not in body:
            continue
        partition, offset = (int(x) for x in body["meta"]["position"].split(":"))
        assert offset > vector.get(partition, -1), "a push arrived twice or out of order"
        vector[partition] = offset
        seqs.append(body["payload"]["seq"])
    return seqs


async def _history_empty(edge: SharedEdge) -> None:
    """Wait (condition, deadline) until the edge's memory holds nothing."""
    end = time.monotonic() + 30
    while metric(edge.edge, "roomcast_edge_history_messages") > 0:
        assert time.monotonic() < end, "the history never emptied"
        await asyncio.sleep(0.2)


async def test_rewind_after_the_room_was_quiet_longer_than_the_history_age(
    infra: Infra, edge: SharedEdge
) -> None:
    room, topic = f"quiet-{uuid.uuid4().hex[:6]}", f"t{uuid.uuid4().hex[:6]}"
    async with bus_publisher(infra, edge.topic) as publisher:
        watcher, _ = await connect(edge.edge, token=token(), roomIds=room)
        await publisher.send_many([message({"seq": i}, room=room) for i in range(5)])
        await publisher.send_many(
            [message({"seq": i}, topic=topic, type_="goal") for i in range(4)]
        )
        assert await asyncio.wait_for(_seqs(watcher, 5), 20) == list(range(5))
        await watcher.close()
        await _history_empty(edge)

        ws, _ = await connect(edge.edge, token=token(), roomIds=room, rewind="3")
        assert await asyncio.wait_for(_seqs(ws, 3), 20) == [2, 3, 4]
        await publisher.send(message({"seq": 5}, room=room))
        assert await _seqs(ws, 1) == [5]

        reply = await request(ws, "subscribe", {"topic": topic, "type": "goal", "rewind": 2})
        assert reply["status"] == "ok", reply
        assert await asyncio.wait_for(_seqs(ws, 2), 20) == [2, 3]
        await publisher.send(message({"seq": 4}, topic=topic, type_="goal"))
        assert await _seqs(ws, 1) == [4]
        await ws.close()

        # GET /v1/history holds them too: the bus is where they were read from.
        query = urllib.parse.urlencode({"room": room, "token": token()})
        status, body = http_get(edge.edge.url + "/v1/history?" + query)
        assert status == 200
        assert [m["payload"]["seq"] for m in json.loads(body)["messages"]] == list(range(6))


async def test_rewind_joins_the_bus_part_to_the_history_part_and_to_live(
    infra: Infra, edge: SharedEdge
) -> None:
    room = f"mixed-{uuid.uuid4().hex[:6]}"
    others = [f"other-{uuid.uuid4().hex[:6]}" for _ in range(6)]
    async with bus_publisher(infra, edge.topic) as publisher:
        watcher, _ = await connect(edge.edge, token=token(), roomIds=room)
        await publisher.send_many([message({"seq": i}, room=room) for i in range(10)])
        # Other rooms' traffic pushes the room's first ten out of a 30-per-partition memory.
        await publisher.send_many([message({"seq": -1}, room=others[i % 6]) for i in range(600)])
        await publisher.send_many([message({"seq": i}, room=room) for i in (10, 11)])
        assert await asyncio.wait_for(_seqs(watcher, 12), 20) == list(range(12))

        ws, _ = await connect(edge.edge, token=token(), roomIds=room, rewind="5")
        seen = asyncio.create_task(_seqs(ws, 8))
        await publisher.send_many([message({"seq": i}, room=room) for i in (12, 13, 14)])
        assert await asyncio.wait_for(seen, 20) == list(range(7, 15))

        # The same through `join` on a connection that was elsewhere.
        late, _ = await connect(edge.edge, token=token())
        reply = await request(late, "join", {"room": room, "rewind": 4})
        assert reply["status"] == "ok", reply
        assert await asyncio.wait_for(_seqs(late, 4), 20) == list(range(11, 15))
        await publisher.send(message({"seq": 15}, room=room))
        assert await _seqs(late, 1) == [15]
        await late.close()
        await ws.close()
        await watcher.close()
