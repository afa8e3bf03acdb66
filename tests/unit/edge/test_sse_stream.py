"""The SSE connection's encoding with in-memory transports: events and their ids,
replays re-encoded, replies handed to the waiting request, the close event."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson

from roomcast_core.tokens import TokenClaims
from roomcast_core.wire import Message
from roomcast_edge.domain.dispatch import ConnectRequest
from roomcast_edge.domain.publication import make_publication, push_body
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.node import Node
from roomcast_edge.transport.sse import (
    MAX_IGNORED_BYTES,
    SseConnection,
    push_position,
    start_vector,
)
from tests.unit.edge.test_node_fanout import FakeTransport, _node


def _stream(
    node: Node, transport: FakeTransport, since: dict[int, int] | None = None
) -> SseConnection:
    claims = TokenClaims("u", "d", "jti-" + str(id(transport)), 0, 2**31)
    return SseConnection(
        node,
        cast(asyncio.Transport, transport),
        claims,
        "the-token",
        TokenBucket(100, 200, 0),
        start_vector(node.history.positions(), since),
        f"{node.edge_id}-{id(transport):x}",
    )


def _events(data: bytes) -> list[dict[str, Any]]:
    """Events as EventSource reads them (comments dropped)."""
    events = []
    for block in data.decode().split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            event[key] = orjson.loads(value) if key == "data" else value
        if event:
            events.append(event)
    return events


def _publish(node: Node, partition: int, offset: int, payload: Any = None) -> int:
    msg = Message(None, None, "r", payload or {"o": offset}, f"m{offset}", "2025-01-01T00:00:00Z")
    return node.publish(make_publication(msg, partition, offset, 1e12), None, live=True)


async def test_pushes_are_events_whose_id_is_the_vector_after_them() -> None:
    node = _node()
    for partition in (0, 1):
        node.start_partition(partition, 0)
    transport = FakeTransport()
    conn = _stream(node, transport)
    node.open(conn, ConnectRequest(["r"], [], [], None))
    _publish(node, 1, 0)
    _publish(node, 0, 0)
    _publish(node, 1, 1)
    await asyncio.sleep(0)
    hello, *pushes = _events(b"".join(transport.writes))
    assert hello["event"] == "connected"
    assert hello["id"] == hello["data"]["position"] == "0:-1,1:-1"
    assert [e["id"] for e in pushes] == ["0:-1,1:0", "0:0,1:0", "0:0,1:1"]
    assert all("event" not in e for e in pushes)
    assert [e["data"]["meta"]["position"] for e in pushes] == ["1:0", "0:0", "1:1"]


async def test_a_replay_is_re_encoded_with_ids_from_each_push() -> None:
    node = _node()
    node.start_partition(0, 0)
    # A payload that mimics the push's own keys must not be taken for them.
    tricky = {"meta": {"position": "9:9"}, "text": '"position":"7:7"'}
    for offset in range(3):
        _publish(node, 0, offset, tricky)
    transport = FakeTransport()
    conn = _stream(node, transport, since={0: 0})
    node.open(conn, ConnectRequest(["r"], [], [], {0: 0}))
    for _ in range(3):
        await asyncio.sleep(0)
    hello, *pushes = _events(b"".join(transport.writes))
    assert hello["data"]["recovered"] is True
    assert hello["id"] == "0:0"
    assert [e["id"] for e in pushes] == ["0:1", "0:2"]
    assert [e["data"]["payload"] for e in pushes] == [tricky, tricky]


def test_the_position_is_read_from_the_end_of_a_push() -> None:
    msg = Message(
        "t", "x", "r", {"meta": {"position": "5:5"}}, 'id "meta":{', "2025-01-01T00:00:00Z"
    )
    body = orjson.dumps(push_body(msg, 3, 41, trace_id="ab" * 16))
    assert push_position(body) == (3, 41)
    assert push_position(b'{"action":"presence"}') is None


def test_a_vector_from_elsewhere_keeps_only_a_few_partitions_this_edge_does_not_read() -> None:
    since = {p: 1 for p in range(1000)}
    vector = start_vector({0: 5, 1: 7}, since)
    assert len(vector) == 2 + 16
    assert start_vector({0: 5, 1: 7}, {1: 3}) == {0: -1, 1: 3}


async def test_a_reply_goes_to_the_waiting_request_not_the_stream() -> None:
    node = _node()
    node.start_partition(0, 0)
    transport = FakeTransport()
    conn = _stream(node, transport)
    node.open(conn, ConnectRequest([], [], [], None))
    await asyncio.sleep(0)
    transport.writes.clear()
    waiter: asyncio.Future[bytes] = node.loop.create_future()
    conn.waiter = waiter
    node.handle_text(conn, b'{"request_id": "a", "action": "ping"}')
    assert orjson.loads(waiter.result())["request_id"] == "a"
    await asyncio.sleep(0)
    assert transport.writes == []


async def test_the_server_ends_a_stream_with_a_close_event_and_no_handshake() -> None:
    node = _node()
    transport = FakeTransport()
    conn = _stream(node, transport)
    node.open(conn, ConnectRequest([], [], [], None))
    waiter: asyncio.Future[bytes] = node.loop.create_future()
    conn.waiter = waiter
    node.close(conn, 4001, "token expired")
    assert transport.closed
    assert waiter.cancelled()  # the request waiting for a reply is told at once
    assert _events(transport.writes[-1]) == [
        {"event": "close", "data": {"code": 4001, "reason": "token expired"}}
    ]
    assert conn.id not in node.connections
    assert not node.sse_connections


async def test_rewound_pushes_carry_the_vector_a_reconnect_resumes_from() -> None:
    node = _node()
    node.start_partition(0, 0)
    for offset in range(5):
        _publish(node, 0, offset)
    transport = FakeTransport()
    conn = _stream(node, transport)
    node.open(conn, ConnectRequest(["r"], [], [], None, rewind=2))
    for _ in range(3):
        await asyncio.sleep(0)
    _publish(node, 0, 5)
    for _ in range(3):
        await asyncio.sleep(0)
    hello, *pushes = _events(b"".join(transport.writes))
    assert hello["id"] == "0:4"
    # Resuming from any of them gets exactly what follows it.
    assert [e["id"] for e in pushes] == ["0:3", "0:4", "0:5"]


async def test_a_client_sending_data_on_its_stream_is_ended_with_1002() -> None:
    node = _node()
    transport = FakeTransport()
    conn = _stream(node, transport)
    node.open(conn, ConnectRequest([], [], [], None))
    conn.data_received(b"x" * 1024)  # dropped
    assert conn.id in node.connections
    conn.data_received(b"x" * MAX_IGNORED_BYTES)
    assert conn.id not in node.connections
    assert _events(transport.writes[-1])[-1]["data"]["code"] == 1002
