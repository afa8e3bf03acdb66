"""Recovery: reconnect with `since` replays what was missed, then goes live with no gap."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import BUSES, Infra, ServiceFactory, infra_on
from tests.integration.edge.conftest import (
    Publisher,
    SharedEdge,
    bus_publisher,
    connect,
    message,
    recv_json,
    recv_reply,
    token,
)


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


class Vector:
    """What a client keeps: per partition the last offset seen."""

    def __init__(self, text: str) -> None:
        self.entries = {int(p): int(o) for p, o in (e.split(":") for e in text.split(","))}

    def advance(self, position: str) -> None:
        partition, offset = (int(x) for x in position.split(":"))
        assert offset > self.entries.get(partition, -1), "a push arrived twice or out of order"
        self.entries[partition] = offset

    def __str__(self) -> str:
        return ",".join(f"{p}:{o}" for p, o in sorted(self.entries.items()))


async def _push(ws: ClientConnection) -> dict[str, Any]:
    while True:
        body = await recv_json(ws)
        if "meta" in body:
            return body


async def test_reconnect_on_the_same_edge_has_no_gap_and_no_duplicate(
    shared_edge: SharedEdge, shared_publisher: Publisher
) -> None:
    edge, publisher = shared_edge.edge, shared_publisher
    room = f"room-{uuid.uuid4().hex[:6]}"
    ws, hello = await connect(edge, token=token(), roomIds=room)
    vector = Vector(hello["position"])
    total = 300

    async def publish() -> None:
        for i in range(total):
            await publisher.send(message({"seq": i}, room=room))
            # noise the client must not get
            if i % 10 == 0:
                await publisher.send(message({"noise": i}, room="elsewhere"))

    producing = asyncio.create_task(publish())
    seen: list[int] = []
    while len(seen) < 60:
        push = await _push(ws)
        vector.advance(push["meta"]["position"])
        seen.append(push["payload"]["seq"])
    await ws.close()
    await asyncio.sleep(0.3)  # messages keep coming while the client is away

    again, hello = await connect(edge, token=token(), roomIds=room, since=str(vector))
    assert hello["recovered"] is True
    while not seen or seen[-1] < total - 1:
        push = await _push(again)
        vector.advance(push["meta"]["position"])
        assert push["room"] == room
        seen.append(push["payload"]["seq"])
    await producing
    assert seen == list(range(total))
    await again.close()


async def test_a_second_edge_serves_a_vector_of_the_first(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> None:
    first = start_service("edge", infra.env(topic), name="edge-a")
    sub = f"quotes-{uuid.uuid4().hex[:6]}"
    ws, hello = await connect(first, token=token(), topics=f"{sub}:tick")
    vector = Vector(hello["position"])
    early = [message({"seq": i}, topic=sub, type_="tick") for i in range(5)]
    await publisher.send_many(early)
    for expected in early:
        push = await _push(ws)
        assert push["meta"]["message_id"] == expected.message_id
        vector.advance(push["meta"]["position"])
    await ws.close()
    missed = [message({"seq": 5 + i}, topic=sub, type_="tick") for i in range(20)]
    noise = [message({"other": i}, topic=sub, type_="other") for i in range(5)]
    await publisher.send_many([*missed[:10], *noise, *missed[10:]])

    # A fresh edge started afterwards fills its history from Kafka.
    second = start_service("edge", infra.env(topic), name="edge-b")
    again, hello = await connect(second, token=token(), topics=f"{sub}:tick", since=str(vector))
    assert hello["recovered"] is True
    for expected in missed:
        push = await _push(again)
        assert push["meta"]["message_id"] == expected.message_id
        vector.advance(push["meta"]["position"])
    live = message({"seq": 25}, topic=sub, type_="tick")
    await publisher.send(live)
    assert (await _push(again))["meta"]["message_id"] == live.message_id
    await again.close()


async def test_a_since_older_than_the_history_is_read_back_from_the_bus(
    infra: Infra, topic: str, start_service: ServiceFactory
) -> None:
    one = {"ROOMCAST_KAFKA__PARTITIONS": "1", "ROOMCAST_BUS__PARTITIONS": "1"}
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__HISTORY_SIZE="5", **one))
    ws, hello = await connect(edge, token=token())
    old = hello["position"]
    assert old == "0:-1"
    msgs = [message({"seq": i}) for i in range(20)]
    async with bus_publisher(infra, topic, partitions=1) as publisher:
        await publisher.send_many(msgs)
    for _ in msgs:
        await _push(ws)
    again, hello = await connect(edge, token=token(), since=old)
    # The bus still holds the gap: it is read back from the bus's log on either bus
    # (see test_deep_recovery; retention past `since` is what answers false there).
    assert hello["recovered"] is True
    got = [(await _push(again))["payload"]["seq"] for _ in range(20)]
    assert got == list(range(20))
    # a recent vector is still covered
    third, hello = await connect(edge, token=token(), since="0:17")
    assert hello["recovered"] is True
    assert [(await _push(third))["payload"]["seq"] for _ in range(2)] == [18, 19]
    for client in (ws, again, third):
        await client.close()


async def test_join_and_subscribe_with_since_replay_for_that_room_or_topic(
    shared_edge: SharedEdge, shared_publisher: Publisher
) -> None:
    edge, publisher = shared_edge.edge, shared_publisher
    room, sub = f"r-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}"
    ws, hello = await connect(edge, token=token())
    start = hello["position"]
    in_room = [message({"room": i}, room=room) for i in range(3)]
    on_topic = [message({"topic": i}, topic=sub, type_="a") for i in range(3)]
    await publisher.send_many([*in_room, *on_topic, message({"x": 1}, room="other")])
    # a broadcast after them proves they have all been read by the edge
    marker = message("marker")
    await publisher.send(marker)
    assert (await _push(ws))["meta"]["message_id"] == marker.message_id

    await ws.send(
        f'{{"request_id":"j","action":"join","params":{{"room":"{room}","since":"{start}"}}}}'
    )
    reply = await recv_reply(ws, "j")
    assert reply["status"] == "ok"
    assert reply["recovered"] is True
    assert [(await _push(ws))["meta"]["message_id"] for _ in in_room] == [
        m.message_id for m in in_room
    ]
    await ws.send(
        f'{{"request_id":"s","action":"subscribe",'
        f'"params":{{"topic":"{sub}","type":"a","since":"{start}"}}}}'
    )
    reply = await recv_reply(ws, "s")
    assert reply["recovered"] is True
    assert [(await _push(ws))["meta"]["message_id"] for _ in on_topic] == [
        m.message_id for m in on_topic
    ]
    await ws.close()
