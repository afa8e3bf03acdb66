"""Hypothesis throws random and malformed frames at a running edge.

Each example opens its own connection and sends a few frames: JSON requests with wrong
types and unknown actions, random text, binary frames, deep JSON, invalid UTF-8, frames
over the size limit, floods. The edge must answer every request exactly once with a
well-formed reply or close that one connection with the code the contract names, while
a control client keeps receiving every message published meanwhile. At the end the
edge is back where it started: connections, asyncio tasks, sockets and memory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from roomcast_harness.services import ServiceProcess
from tests.conftest import Infra, ServiceFactory
from tests.integration.edge.conftest import WAIT, Publisher, connect, recv_json, token
from tests.robustness.ledger import Ledger
from tests.robustness.support import (
    Watcher,
    eventually,
    metrics,
    open_sockets,
    publish_direct,
    rss_bytes,
    watch,
)

MAX_FRAME = 16384
CONTROL_ROOM = "control"
# Memory may not shrink all the way (allocator arenas); a leak per example would.
RSS_SLACK = 24 * 1024 * 1024

ACTIONS = ["subscribe", "unsubscribe", "join", "leave", "ping"]


@dataclass(frozen=True)
class Frame:
    kind: str  # "text", "binary", "bad_utf8", "huge", "flood"
    data: bytes | str
    count: int = 1

    @property
    def requests(self) -> int:
        """How many replies this frame asks for (if the connection stays open)."""
        return self.count if self.kind in ("text", "binary", "flood") else 0

    @property
    def may_close(self) -> set[int]:
        """Close codes this frame may legitimately cause."""
        return {"bad_utf8": {1007}, "huge": {1009}, "flood": {1008}}.get(self.kind, set())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)
names = st.one_of(
    st.text(max_size=300), st.integers(), json_values, st.just(""), st.just("x" * 257)
)
sinces = st.one_of(
    st.from_regex(r"\A(-?\d{1,12}:-?\d{1,20},?){0,4}\Z"), st.text(max_size=24), json_values
)
params = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {}, optional={"topic": names, "type": names, "room": names, "since": sinces}
    ),
)
requests = st.fixed_dictionaries(
    {"action": st.one_of(st.sampled_from([*ACTIONS, "", "PING", "publish"]), json_values)},
    optional={
        "request_id": st.one_of(st.text(max_size=10), st.integers(), json_values),
        "params": params,
        "timestamp": json_values,
    },
)
# Deep but within the frame limit ('{"a":' * 2500 is ~15 KB): the parser is the target.
deep_json = st.tuples(st.integers(600, 2500), st.sampled_from([("[", "]"), ('{"a":', "}")])).map(
    lambda t: t[1][0] * t[0] + "1" + t[1][1] * t[0]
)
frames = st.one_of(
    requests.map(lambda r: Frame("text", json.dumps(r))),
    requests.map(lambda r: Frame("binary", json.dumps(r).encode())),
    st.text(max_size=64).map(lambda t: Frame("text", t)),
    st.binary(max_size=64).map(lambda b: Frame("binary", b)),
    deep_json.map(lambda t: Frame("text", t)),
    st.binary(min_size=1, max_size=16).map(lambda b: Frame("bad_utf8", b"\xff" + b)),
    st.integers(MAX_FRAME + 1, 4 * MAX_FRAME).map(lambda n: Frame("huge", "x" * n)),
    st.integers(20, 400).map(lambda n: Frame("flood", '{"request_id": "f", "action": "ping"}', n)),
)


@dataclass
class FuzzTarget:
    edge: ServiceProcess
    publisher: Publisher
    ledger: Ledger
    control: Watcher
    published: list[str]


@pytest_asyncio.fixture
async def target(
    infra: Infra, topic: str, start_service: ServiceFactory, publisher: Publisher
) -> AsyncIterator[FuzzTarget]:
    edge = start_service("edge", infra.env(topic, ROOMCAST_EDGE__MAX_FRAME_BYTES=str(MAX_FRAME)))
    ledger = Ledger()
    control = await watch(ledger, "control", edge, token(), roomIds=CONTROL_ROOM)
    yield FuzzTarget(edge, publisher, ledger, control, [])
    await control.close()


async def _send(ws: websockets.ClientConnection, frame: Frame) -> None:
    if frame.kind == "bad_utf8":
        assert isinstance(frame.data, bytes)
        await ws.send(frame.data, text=True)  # a text frame that is not UTF-8
    elif frame.kind == "flood":
        for i in range(frame.count):
            await ws.send(f'{{"request_id": "f{i}", "action": "ping"}}')
    else:
        await ws.send(frame.data)


def _check_reply(body: dict[str, Any]) -> None:
    assert set(body) >= {"request_id", "action", "status", "error_message", "timestamp"}, body
    assert body["status"] in ("ok", "fail"), body
    assert isinstance(body["error_message"], str), body
    assert isinstance(body["timestamp"], int), body
    if body["status"] == "fail":
        assert body["error_message"], body


async def _replies_until(ws: websockets.ClientConnection, request_id: str) -> int:
    """Check every reply up to the one for request_id; return how many came before it."""
    replies = 0
    while True:
        body = await recv_json(ws)
        if "meta" in body:
            continue  # a push (a fuzzed join of a real room): not a reply
        _check_reply(body)
        if body["request_id"] == request_id:
            return replies
        replies += 1


async def _one_session(target: FuzzTarget, sent: list[Frame]) -> None:
    """Send the frames on a fresh connection; check the replies or the close code.

    After a frame the edge must refuse by closing (invalid UTF-8, oversized) the client
    stops sending, as a well-behaved peer would, so the exact close code must arrive.
    """
    ws, _ = await connect(target.edge, token=token(rooms=["fuzz-a", "fuzz-b"], topics=["t"]))
    allowed_closes: set[int] = set()
    expected = 0
    try:
        for frame in sent:
            allowed_closes |= frame.may_close
            await _send(ws, frame)
            expected += frame.requests
            if frame.kind in ("bad_utf8", "huge"):
                await _replies_until(ws, "never")  # ends when the edge closes
        await ws.send('{"request_id": "sentinel", "action": "ping"}')
        replies = await _replies_until(ws, "sentinel")
        assert replies == expected, f"{replies} replies to {expected} requests"
    except websockets.ConnectionClosed:
        assert ws.close_code in allowed_closes, (ws.close_code, ws.close_reason, sent)
    finally:
        await ws.close()
    # The rest of the edge is untouched: the control client gets the next message.
    target.published += await publish_direct(target.publisher, target.ledger, 1, room=CONTROL_ROOM)
    await target.control.wait_for(target.published)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sent=st.lists(frames, min_size=1, max_size=6))
@example(sent=[Frame("bad_utf8", b"\xff\xfe{}")])
@example(sent=[Frame("huge", "x" * (MAX_FRAME + 1))])
@example(sent=[Frame("binary", b'{"request_id": "b", "action": "ping"}'), Frame("binary", b"\x00")])
@example(sent=[Frame("text", "[" * 3000 + "]" * 3000)])
@example(sent=[Frame("text", '{"action": "subscribe", "params": {"topic": 5, "type": []}}')])
@example(sent=[Frame("text", '{"request_id": "u", "action": "teleport"}')])
@example(sent=[Frame("flood", '{"action": "ping"}', 400)])
async def test_fuzzed_frames_are_answered_or_close_only_their_connection(
    target: FuzzTarget, sent: list[Frame]
) -> None:
    await _one_session(target, sent)


async def test_after_fuzzing_the_edge_is_back_to_baseline(target: FuzzTarget) -> None:
    """Leaks show up after many sessions: run a fixed mix twice, compare with a warm baseline."""
    edge = target.edge
    mix = [
        [Frame("text", '{"request_id": "a", "action": "join", "params": {"room": "fuzz-a"}}')],
        [Frame("huge", "y" * (2 * MAX_FRAME))],
        [Frame("bad_utf8", b"\xc3\x28")],
        [Frame("flood", '{"action": "ping"}', 300)],
        [Frame("text", "[" * 4000 + "]" * 4000), Frame("binary", b"\x00\x01")],
    ]
    for frames_ in mix:  # warm-up: imports, caches and buffers reach their working size
        await _one_session(target, frames_)
    await target.control.wait_for(target.published)

    def gauges() -> tuple[float, float]:
        sample = metrics(edge)
        return sample["roomcast_edge_connections"], sample["roomcast_edge_asyncio_tasks"]

    connections, tasks = await eventually(
        gauges, lambda g: g[0] == 1, WAIT, "connections after warm-up"
    )
    base_sockets = open_sockets(edge.pid)
    base_rss = rss_bytes(edge.pid)

    for _ in range(8):
        for frames_ in mix:
            await _one_session(target, frames_)
    await target.control.wait_for(target.published)

    await eventually(gauges, lambda g: g == (connections, tasks), WAIT, "connections and tasks")
    await eventually(
        lambda: open_sockets(edge.pid), lambda n: n <= base_sockets, WAIT, "open sockets"
    )
    rss = rss_bytes(edge.pid)
    assert rss <= base_rss + RSS_SLACK, f"RSS grew from {base_rss} to {rss}"
    report = target.ledger.check()
    assert report.ok, report.text()
    assert report.clients[0].delivered == len(target.published) == 5 + 8 * 5


FLOOD_TRIALS = 12


async def test_a_request_flood_sees_its_1008_close(target: FuzzTarget) -> None:
    """A client that keeps sending is closed with 1008 and must be told so: a client that
    sees 1006 instead takes it for a network fault and reconnects at once."""
    codes: list[int | None] = []
    for _ in range(FLOOD_TRIALS):
        ws, _ = await connect(target.edge, token=token())
        try:
            for i in range(5000):
                await ws.send(f'{{"request_id": "f{i}", "action": "ping"}}')
            while True:
                await recv_json(ws)
        except websockets.ConnectionClosed:
            codes.append(ws.close_code)
    assert codes == [1008] * FLOOD_TRIALS, codes
