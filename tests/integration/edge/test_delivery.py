"""Who receives what: rooms, topics and types, both, broadcasts — each exactly once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.conftest import BUSES, Infra, infra_on
from tests.integration.edge.conftest import (
    Publisher,
    SharedEdge,
    connect,
    message,
    metric,
    pushes_until,
    recv_json,
    token,
)


@pytest.fixture(scope="module", params=BUSES)
def infra(request: pytest.FixtureRequest) -> Infra:
    """Every test here runs on Kafka and on Redis Streams."""
    return infra_on(request)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _next_push(ws: ClientConnection) -> dict[str, Any]:
    while True:
        body = await recv_json(ws)
        if "meta" in body:
            return body


async def _marker(publisher: Publisher, clients: list[ClientConnection]) -> str:
    """A broadcast everyone must get next: proves nothing else was queued before it."""
    marker = message({"marker": True}, message_id=_name("marker"))
    await publisher.send(marker)
    for ws in clients:
        push = await _next_push(ws)
        assert push["meta"]["message_id"] == marker.message_id, push
    return marker.message_id


async def test_room_messages_reach_only_the_room(
    shared_edge: SharedEdge, shared_publisher: Publisher
) -> None:
    room, other = _name("room"), _name("room")
    edge = shared_edge.edge
    a, _ = await connect(edge, token=token(), roomIds=room)
    b, _ = await connect(edge, token=token(), roomIds=other)
    c, _ = await connect(edge, token=token())
    msg = message('{"content":"message"}', room=room, type_="score")
    position = await shared_publisher.send(msg)
    push = await _next_push(a)
    assert push == {
        "type": "score",
        "room": room,
        "payload": '{"content":"message"}',
        "meta": {
            "receive_time": msg.receive_time,
            "message_id": msg.message_id,
            "position": position,
        },
    }
    await _marker(shared_publisher, [b, c, a])
    for ws in (a, b, c):
        await ws.close()


async def test_topic_and_type_with_star_and_no_duplicates(
    shared_edge: SharedEdge, shared_publisher: Publisher
) -> None:
    topic = _name("order")
    edge = shared_edge.edge
    exact, _ = await connect(edge, token=token(), topics=f"{topic}:event")
    star, _ = await connect(edge, token=token(), topics=f"{topic}:*")
    other, _ = await connect(edge, token=token(), topics=f"{topic}:other")
    both, _ = await connect(edge, token=token(), topics=f"{topic}:event,{topic}")
    nobody, _ = await connect(edge, token=token(), topics=_name("else"))
    event = message([1, 2, 3], topic=topic, type_="event")
    await shared_publisher.send(event)
    for ws in (exact, star, both):
        push = await _next_push(ws)
        assert push["meta"]["message_id"] == event.message_id
        assert push["topic"] == topic
        assert push["type"] == "event"
        assert push["payload"] == [1, 2, 3]
        assert "room" not in push
    untyped = message(7, topic=topic)
    await shared_publisher.send(untyped)
    for ws in (star, both):  # no type: only the "*" subscriptions
        assert (await _next_push(ws))["meta"]["message_id"] == untyped.message_id
    # the marker comes next for all: nothing else (and no second copy) was queued
    await _marker(shared_publisher, [exact, star, other, both, nobody])
    for ws in (exact, star, other, both, nobody):
        await ws.close()


async def test_room_and_topic_must_both_match(
    shared_edge: SharedEdge, shared_publisher: Publisher
) -> None:
    room, topic = _name("room"), _name("quotes")
    edge = shared_edge.edge
    match, _ = await connect(edge, token=token(), roomIds=room, topics=topic)
    room_only, _ = await connect(edge, token=token(), roomIds=room)
    topic_only, _ = await connect(edge, token=token(), topics=topic)
    msg = message({"px": 1.5}, room=room, topic=topic, type_="tick")
    await shared_publisher.send(msg)
    push = await _next_push(match)
    assert push["meta"]["message_id"] == msg.message_id
    assert (push["room"], push["topic"], push["type"]) == (room, topic, "tick")
    await _marker(shared_publisher, [room_only, topic_only, match])
    for ws in (match, room_only, topic_only):
        await ws.close()


async def test_broadcast_reaches_everyone_once(
    shared_edge: SharedEdge, shared_publisher: Publisher
) -> None:
    edge = shared_edge.edge
    clients = [
        (await connect(edge, token=token(), roomIds=_name("r"), topics=_name("t")))[0]
        for _ in range(3)
    ]
    clients.append((await connect(edge, token=token()))[0])
    msg = message({"all": True})
    await shared_publisher.send(msg)
    for ws in clients:
        push = await _next_push(ws)
        assert push["meta"]["message_id"] == msg.message_id
        assert "topic" not in push
        assert "room" not in push
    await _marker(shared_publisher, clients)
    for ws in clients:
        await ws.close()


async def test_order_is_kept_per_room_and_subscribe_takes_effect(
    shared_edge: SharedEdge, shared_publisher: Publisher
) -> None:
    room = _name("room")
    ws, _ = await connect(shared_edge.edge, token=token())
    await ws.send(f'{{"request_id":"j","action":"join","params":{{"room":"{room}"}}}}')
    assert (await recv_json(ws))["status"] == "ok"
    msgs = [message({"seq": i}, room=room) for i in range(200)]
    await shared_publisher.send_many(msgs)
    pushes = await pushes_until(ws, msgs[-1].message_id)
    assert [p["payload"]["seq"] for p in pushes] == list(range(200))
    offsets = [int(p["meta"]["position"].split(":")[1]) for p in pushes]
    assert offsets == sorted(offsets)
    await ws.close()


async def test_undecodable_records_are_counted_and_skipped(
    shared_edge: SharedEdge, shared_publisher: Publisher
) -> None:
    before = metric(shared_edge.edge, "roomcast_edge_undecodable_total")
    ws, _ = await connect(shared_edge.edge, token=token())
    # The last one is valid JSON a backend may write straight to the topic, but its
    # payload is nested deeper than a push can be re-encoded.
    too_deep = b'{"v": 1, "message_id": "deep", "receive_time": "2025-01-01T00:00:00Z", "payload": '
    too_deep += b"[" * 254 + b"]" * 254 + b"}"
    junks = (b"not json", b"[1]", b'{"v": 99, "payload": 1}', b'{"v": 1}', too_deep)
    for junk in junks:
        await shared_publisher.send_raw(junk)
    msg = message("still flowing")
    await shared_publisher.send(msg)
    assert (await _next_push(ws))["meta"]["message_id"] == msg.message_id
    assert metric(shared_edge.edge, "roomcast_edge_undecodable_total") >= before + len(junks)
    await ws.close()
