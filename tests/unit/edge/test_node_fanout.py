"""Node and fan-out with in-memory transports: coalescing, slow consumers, the recovery seam."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import orjson
import pytest
from prometheus_client import CollectorRegistry

from roomcast_core.settings import load_settings
from roomcast_core.tokens import TokenClaims
from roomcast_core.wire import Message
from roomcast_edge import node as node_module
from roomcast_edge.adapters.redis_presence import RedisPresence
from roomcast_edge.domain.dispatch import ConnectRequest
from roomcast_edge.domain.frames import close_frame
from roomcast_edge.domain.ports import Presence, PublicationSink
from roomcast_edge.domain.publication import make_publication
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.metrics import EdgeMetrics
from roomcast_edge.node import Node
from roomcast_edge.transport.connection import Connection


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.writes: list[bytes] = []
        self.buffered = buffered
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True


def _node(**edge: Any) -> Node:
    settings = load_settings({}, {"edge": edge})
    loop = asyncio.get_running_loop()
    return Node(settings.edge, EdgeMetrics(CollectorRegistry()), loop)


def _conn(node: Node, transport: FakeTransport, rooms: tuple[str, ...] | None = None) -> Connection:
    claims = TokenClaims("u", "d", "jti-" + str(id(transport)), 0, 2**31, rooms=rooms)
    return Connection(
        node,
        cast(asyncio.Transport, transport),
        claims,
        TokenBucket(100, 200, 0),
        node.loop.time(),
    )


def _frames(data: bytes) -> list[dict[str, Any]]:
    """Split concatenated small unmasked text frames (< 126 or 16-bit lengths)."""
    out = []
    while data:
        size, head = data[1], 2
        if size == 126:
            size, head = int.from_bytes(data[2:4], "big"), 4
        out.append(orjson.loads(data[head : head + size]))
        data = data[head + size :]
    return out


def _publish(node: Node, partition: int, offset: int, room: str | None = None) -> int:
    msg = Message(None, None, room, {"o": offset}, f"m{offset}", "2025-01-01T00:00:00.000Z")
    return node.publish(make_publication(msg, partition, offset, 1e12), None, live=True)


async def test_frames_of_one_turn_go_out_in_one_write() -> None:
    node = _node()
    for p in (0, 1):
        node.start_partition(p, 0)
    transport = FakeTransport()
    conn = _conn(node, transport)
    node.open(conn, ConnectRequest([], [], [], None))
    for offset in range(5):
        assert _publish(node, 0, offset) == 1
    assert transport.writes == []  # nothing until the loop turns
    await asyncio.sleep(0)
    assert len(transport.writes) == 1
    frames = _frames(transport.writes[0])
    assert frames[0]["action"] == "connected"
    assert frames[0]["position"] == "0:-1,1:-1"
    assert [f["meta"]["position"] for f in frames[1:]] == [f"0:{o}" for o in range(5)]


async def test_a_slow_consumer_is_closed_and_others_still_get_everything() -> None:
    node = _node(max_outbound_bytes=1000)
    node.start_partition(0, 0)
    fast_t, slow_t = FakeTransport(), FakeTransport(buffered=990)
    fast, slow = _conn(node, fast_t), _conn(node, slow_t)
    for conn in (fast, slow):
        node.open(conn, ConnectRequest([], [], [], None))
    await asyncio.sleep(0)  # connected frames: slow's buffer is "full" already
    fast_t.writes.clear()
    _publish(node, 0, 0)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert slow.closed
    # Nothing queued went out to it, only the close frame.
    assert slow_t.writes == [close_frame(4008, "slow consumer")]
    assert slow not in node.hub
    assert len(_frames(fast_t.writes[0])) == 1
    assert _publish(node, 0, 1) == 1  # only the fast one is left


async def test_recovery_replays_then_live_without_duplicates_when_since_is_ahead() -> None:
    node = _node()
    node.start_partition(0, 0)
    for offset in range(3):
        _publish(node, 0, offset, room="r")
    transport = FakeTransport()
    conn = _conn(node, transport)
    # the client saw offset 0: 1 and 2 are replayed, then live
    node.open(conn, ConnectRequest(["r"], [], [], {0: 0}))
    for offset in range(3, 7):
        _publish(node, 0, offset, room="r")
    await asyncio.sleep(0)
    frames = _frames(b"".join(transport.writes))
    assert frames[0]["recovered"] is True
    assert [f["meta"]["position"] for f in frames[1:]] == ["0:1", "0:2", "0:3", "0:4", "0:5", "0:6"]

    # the same vector from an edge ahead: 3 and 4 are skipped when they arrive live
    ahead_t = FakeTransport()
    ahead = _conn(node, ahead_t)
    node.open(ahead, ConnectRequest(["r"], [], [], {0: 8}))
    for offset in range(7, 10):
        _publish(node, 0, offset, room="r")
    await asyncio.sleep(0)
    frames = _frames(b"".join(ahead_t.writes))
    assert [f["meta"]["position"] for f in frames[1:]] == ["0:9"]


async def test_rooms_outside_the_claim_are_refused() -> None:
    node = _node()
    transport = FakeTransport()
    conn = _conn(node, transport, rooms=("a",))
    refused = [("c", "too_many_rooms"), (":y", "invalid")]
    node.open(conn, ConnectRequest(["a", "b"], [("x:*", "x", "*")], refused, None))
    await asyncio.sleep(0)
    hello = _frames(transport.writes[0])[0]
    assert hello["rooms"] == ["a"]
    assert hello["refused"] == ["b", "c", ":y"]
    assert hello["refused_reasons"] == {"b": "not_allowed", "c": "too_many_rooms", ":y": "invalid"}
    assert node.hub.subscription_count == 1


def test_ports_fit() -> None:
    def check(presence: RedisPresence, node: Node) -> tuple[Presence, PublicationSink]:
        return presence, node  # mypy proves the adapters fit the ports

    assert callable(check)


async def test_skips_for_partitions_never_read_here_are_dropped_after_a_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = _node()
    node.start_partition(0, 0)
    conn = _conn(node, FakeTransport())
    node.open(conn, ConnectRequest([], [], [], {0: -1, 7: 12, 999: 3}))
    assert conn.skip == {7: 12, 999: 3}
    node.forget_unknown_partitions()
    assert conn.skip is not None  # within the grace: partition 7 may be new
    monkeypatch.setattr(node_module, "UNKNOWN_PARTITION_GRACE", 0.0)
    other = _conn(node, FakeTransport())
    node.open(other, ConnectRequest([], [], [], {5: 1}))
    node.forget_unknown_partitions()
    assert other.skip is None
    assert conn.skip is not None  # its own deadline is still ahead


def test_connection_slots_are_reserved_before_the_handshake_awaits() -> None:
    settings = load_settings({}, {"edge": {"max_connections": 2}})
    node = Node(settings.edge, EdgeMetrics(CollectorRegistry()), asyncio.new_event_loop())
    try:
        assert node.reserve()
        assert node.reserve()
        assert not node.reserve()  # two handshakes in flight fill the edge
        node.release()
        assert node.reserve()
    finally:
        node.loop.close()


async def test_the_upgrade_answer_and_connected_leave_in_one_write_answer_first() -> None:
    node = _node()
    node.start_partition(0, 0)
    transport = FakeTransport()
    conn = _conn(node, transport)
    node.open(conn, ConnectRequest([], [], [], None))
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    node.fanout.flush_now(conn, first=answer)
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(answer)
    assert [f["action"] for f in _frames(transport.writes[0][len(answer) :])] == ["connected"]
    # nothing written twice at the end of the turn; later pushes follow in their own write
    assert _publish(node, 0, 0) == 1
    await asyncio.sleep(0)
    assert len(transport.writes) == 2
    assert [f["meta"]["position"] for f in _frames(transport.writes[1])] == ["0:0"]
