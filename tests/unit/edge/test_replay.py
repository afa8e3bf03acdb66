"""Replays: selection by index, pacing by the socket, and the seam with the live stream."""

from __future__ import annotations

import asyncio
import gc
import random
import time
from functools import partial
from typing import Any, cast

import orjson
import pytest

from roomcast_core.tokens import TokenClaims
from roomcast_core.wire import Message
from roomcast_edge.domain.dispatch import ConnectRequest, Dispatcher, Limits
from roomcast_edge.domain.frames import close_frame, frame_payload
from roomcast_edge.domain.history import History
from roomcast_edge.domain.history_view import oldest_kept
from roomcast_edge.domain.hub import ANY_TYPE, Hub
from roomcast_edge.domain.publication import Publication, make_publication
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.domain.replay import ReplayJob, addressed
from roomcast_edge.domain.replay_index import ReplayIndex, keys_of
from roomcast_edge.domain.session import Session
from roomcast_edge.node import Node
from roomcast_edge.transport.connection import Connection
from roomcast_edge.transport.fanout import REPLAY_CHUNK
from tests.unit.edge.test_node_fanout import _conn, _frames, _node

ROOMS = ("a", "b", "c")
TOPICS = ("x", "y")
TYPES = ("e", "f")


def _random_publication(rng: random.Random, partition: int, offset: int) -> Publication:
    room = rng.choice((*ROOMS, None))
    topic = rng.choice((*TOPICS, None))
    type_ = rng.choice(TYPES) if topic is not None else None
    msg = Message(topic, type_, room, {"p": partition, "o": offset}, f"m{partition}-{offset}", "x")
    return make_publication(msg, partition, offset, 1e12)


def _offsets(frames: list[bytes]) -> list[tuple[int, int]]:
    bodies = [orjson.loads(frame_payload(f))["payload"] for f in frames]
    return [(b["p"], b["o"]) for b in bodies]


def _read_all(index: ReplayIndex, jobs: list[ReplayJob]) -> list[tuple[int, int]]:
    frames: list[bytes] = []
    for job in jobs:
        done = False
        while not done:  # small budgets: every chunk boundary is crossed
            _, _, done = job.read(index, frames, 700, 7)
    return _offsets(frames)


def _session() -> Session:
    return Session(TokenClaims("u", "d", "j", 0, 2**31), TokenBucket(1e9, 1e9, 0))


def _request(action: str, since: dict[int, int], **params: str) -> bytes:
    vector = ",".join(f"{p}:{o}" for p, o in since.items())
    body = {"request_id": "r", "action": action, "params": {**params, "since": vector}}
    return orjson.dumps(body)


def test_replays_select_exactly_what_the_hub_rules_select() -> None:
    """Connect, subscribe and join replays against a brute-force scan of the history."""
    rng = random.Random(7)
    for _ in range(40):
        history = History(1000, 1e9)
        dispatcher: Dispatcher[Session] = Dispatcher(Hub(), history, Limits(3, 8, 10_000))
        publications: list[Publication] = []
        for partition in range(3):
            history.start(partition, 0)
        for offset in range(60):
            for partition in range(3):
                publication = _random_publication(rng, partition, offset)
                assert history.append(publication)
                dispatcher.index.add(publication)
                publications.append(publication)
        since = {p: rng.randint(-1, 59) for p in range(3)}
        rooms = rng.sample(ROOMS, rng.randint(0, 2))
        subs = [(t, rng.choice((*TYPES, ANY_TYPE))) for t in rng.sample(TOPICS, rng.randint(0, 2))]
        ordered = sorted(
            (p for p in publications if p.offset > since[p.partition]),
            key=lambda p: (p.partition, p.offset),
        )

        session = _session()
        specs = [(f"{t}:{ty}", t, ty) for t, ty in subs]
        opened = dispatcher.open(session, ConnectRequest(rooms, specs, [], since), now=0)
        want = [
            (p.partition, p.offset)
            for p in ordered
            if addressed(frozenset(rooms), frozenset(subs), p)
        ]
        assert _read_all(dispatcher.index, opened.replay) == want

        # subscribe with since: what the new subscription adds, nothing already had
        topic, type_ = rng.choice(TOPICS), rng.choice((*TYPES, ANY_TYPE))
        hub = dispatcher.hub
        before = hub.rooms_of(session), hub.subscriptions_of(session)
        answer = dispatcher.handle(
            session, _request("subscribe", since, topic=topic, type=type_), 0, 0
        )
        after = hub.rooms_of(session), hub.subscriptions_of(session)
        want = [
            (p.partition, p.offset)
            for p in ordered
            if addressed(*after, p) and not addressed(*before, p)
        ]
        assert _read_all(dispatcher.index, answer.replay) == want

        # join with since
        room = rng.choice([r for r in ROOMS if r not in rooms])
        before = hub.rooms_of(session), hub.subscriptions_of(session)
        answer = dispatcher.handle(session, _request("join", since, room=room), 0, 0)
        if answer.outcome == "fail":  # at the room limit
            continue
        after = hub.rooms_of(session), hub.subscriptions_of(session)
        want = [
            (p.partition, p.offset)
            for p in ordered
            if addressed(*after, p) and not addressed(*before, p)
        ]
        assert _read_all(dispatcher.index, answer.replay) == want


def test_a_gap_over_max_replay_is_not_replayed_and_not_recovered() -> None:
    history = History(1000, 1e9)
    history.start(0, 0)
    dispatcher: Dispatcher[Session] = Dispatcher(Hub(), history, Limits(2, 4, max_replay=5))
    for offset in range(10):
        msg = Message(None, None, "r", {"o": offset}, f"m{offset}", "x")
        publication = make_publication(msg, 0, offset, 1e12)
        history.append(publication)
        dispatcher.index.add(publication)
    small = dispatcher.open(_session(), ConnectRequest(["r"], [], [], {0: 4}), now=0)
    assert small.recovered is True
    assert len(small.replay) == 1
    big = dispatcher.open(_session(), ConnectRequest(["r"], [], [], {0: 3}), now=0)
    assert big.recovered is False
    assert big.replay == []


def test_the_index_lets_go_of_what_the_history_evicted() -> None:
    history = History(50, 1e9)
    history.start(0, 0)
    index = ReplayIndex(lambda p: oldest_kept(history, p))
    rng = random.Random(3)
    for offset in range(1000):
        publication = _random_publication(rng, 0, offset)
        assert history.append(publication)
        index.add(publication)
    index.trim()
    keys = list({keys_of(p)[0] for p in history.after({})})  # each one's every-type list
    assert index.count(0, keys, -1, None) == 50
    assert index.dropped(0) == 949
    # offsets going backwards (a re-created topic): the index starts the partition over
    history.reset(0, 0)
    publication = _random_publication(rng, 0, 0)
    history.append(publication)
    index.add(publication)
    assert index.count(0, [keys_of(publication)[0]], -1, None) == 1
    assert index.dropped(0) == -1


class PacedTransport:
    """A socket whose client reads only when told to: asyncio's flow control included."""

    HIGH = 64 * 1024

    def __init__(self) -> None:
        self.protocol: Connection | None = None
        self.received: list[bytes] = []  # what the client read
        self.buffered: list[bytes] = []  # written, not read yet
        self.peak = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.buffered.append(bytes(data))
        size = self.get_write_buffer_size()
        self.peak = max(self.peak, size)
        if size > self.HIGH and self.protocol is not None and not self.protocol.paused:
            self.protocol.pause_writing()

    def get_write_buffer_size(self) -> int:
        return sum(len(b) for b in self.buffered)

    def read_all(self) -> None:
        self.received.extend(self.buffered)
        self.buffered.clear()
        if self.protocol is not None and self.protocol.paused:
            self.protocol.resume_writing()

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def _room_publish(node: Node, offset: int, room: str = "r", size: int = 600) -> None:
    msg = Message(None, None, room, {"p": 0, "o": offset, "pad": "x" * size}, f"m{offset}", "x")
    node.publish(make_publication(msg, 0, offset, 1e12), None, live=True)


def _paced(node: Node) -> tuple[Connection, PacedTransport]:
    transport = PacedTransport()
    conn = _conn(node, cast(Any, transport))
    transport.protocol = conn
    return conn, transport


async def _turns(count: int = 3) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_big_gap_is_replayed_as_the_client_reads_then_live_with_no_seam() -> None:
    # 1 MiB outbound limit, a ~3.6 MB gap: queued at once, this used to be a 4008.
    node = _node(max_outbound_bytes=1024 * 1024)
    node.start_partition(0, 0)
    gap = 6000
    for offset in range(gap):
        _room_publish(node, offset)
    conn, transport = _paced(node)
    node.open(conn, ConnectRequest(["r"], [], [], {0: -1}))
    offset = gap
    for _ in range(2000):
        await _turns()
        # live messages keep coming while the replay runs
        _room_publish(node, offset)
        offset += 1
        transport.read_all()
        if not node.fanout.replaying(conn):
            break
    for _ in range(5):
        _room_publish(node, offset)
        offset += 1
    await _turns()
    transport.read_all()
    assert not conn.closed
    frames = _frames(b"".join(transport.received))
    assert frames[0]["action"] == "connected"
    assert frames[0]["recovered"] is True
    got = [f["payload"]["o"] for f in frames[1:]]
    assert got == list(range(offset))  # every message once, in order, across the seam
    # paced: the transport never held much more than a chunk past its high-water mark
    assert transport.peak <= PacedTransport.HIGH + 2 * REPLAY_CHUNK


async def test_requests_are_answered_while_a_replay_waits_for_the_socket() -> None:
    node = _node()
    node.start_partition(0, 0)
    for offset in range(1000):
        _room_publish(node, offset)
    conn, transport = _paced(node)
    node.open(conn, ConnectRequest(["r"], [], [], {0: -1}))
    await _turns()
    assert conn.paused  # the client is not reading
    node.handle_text(conn, b'{"request_id":"p","action":"ping"}')
    await _turns()
    assert not conn.closed
    transport.read_all()
    while node.fanout.replaying(conn):
        await _turns()
        transport.read_all()
    frames = _frames(b"".join(transport.received))
    replies = [f for f in frames if f.get("request_id") == "p"]
    assert len(replies) == 1
    assert [f["payload"]["o"] for f in frames if "payload" in f] == list(range(1000))


async def test_joining_during_a_replay_keeps_every_room_in_order() -> None:
    node = _node(max_rooms=2)
    node.start_partition(0, 0)
    offset = 0
    for _ in range(400):
        _room_publish(node, offset, "r")
        _room_publish(node, offset + 1, "s")
        offset += 2
    conn, transport = _paced(node)
    node.open(conn, ConnectRequest(["r"], [], [], {0: -1}))
    await _turns()
    assert node.fanout.replaying(conn)
    joined_at = offset
    node.handle_text(conn, b'{"request_id":"j","action":"join","params":{"room":"s"}}')
    for _ in range(50):
        _room_publish(node, offset, "r")
        _room_publish(node, offset + 1, "s")
        offset += 2
    while node.fanout.replaying(conn):
        transport.read_all()
        await _turns()
    transport.read_all()
    pushes = [f for f in _frames(b"".join(transport.received)) if "payload" in f]
    r = [f["payload"]["o"] for f in pushes if f["room"] == "r"]
    s = [f["payload"]["o"] for f in pushes if f["room"] == "s"]
    assert r == list(range(0, offset, 2))
    assert s == list(range(joined_at + 1, offset, 2))  # from the join on, no earlier


async def test_a_replay_the_history_overtakes_is_closed_as_slow() -> None:
    """Even while its client does not read (it would hold its socket and replay state)."""
    node = _node(history_size=300)
    node.start_partition(0, 0)
    for offset in range(300):
        _room_publish(node, offset)
    conn, transport = _paced(node)
    node.open(conn, ConnectRequest(["r"], [], [], {0: -1}))
    other, other_transport = _paced(node)
    node.open(other, ConnectRequest(["r"], [], [], None))
    await _turns()
    assert conn.paused
    for offset in range(300, 900):  # the client does not read; the history moves on
        _room_publish(node, offset)
        await _turns(1)
        other_transport.read_all()
        assert transport.get_write_buffer_size() <= PacedTransport.HIGH + REPLAY_CHUNK
    node.expire_history(0)  # the history's timer: the replay is overtaken, read or not
    assert conn.closed
    assert transport.buffered[-1] == close_frame(4008, "slow consumer")
    pushes = [f for f in _frames(b"".join(other_transport.received)) if "payload" in f]
    assert [f["payload"]["o"] for f in pushes] == list(range(300, 900))


@pytest.mark.parametrize("action", ["subscribe", "join"])
async def test_a_since_request_replays_then_joins_the_live_stream(action: str) -> None:
    node = _node()
    node.start_partition(0, 0)
    for offset in range(300):
        msg = Message("t", "e", None, {"o": offset}, f"m{offset}", "x")
        if action == "join":
            msg = Message(None, None, "r", {"o": offset}, f"m{offset}", "x")
        node.publish(make_publication(msg, 0, offset, 1e12), None, live=True)
    conn, transport = _paced(node)
    node.open(conn, ConnectRequest([], [], [], None))
    params = (
        '{"topic":"t","since":"0:99"}' if action == "subscribe" else '{"room":"r","since":"0:99"}'
    )
    node.handle_text(conn, f'{{"request_id":"q","action":"{action}","params":{params}}}'.encode())
    live = range(300, 340)
    for offset in live:
        msg = Message("t", "e", None, {"o": offset}, f"m{offset}", "x")
        if action == "join":
            msg = Message(None, None, "r", {"o": offset}, f"m{offset}", "x")
        node.publish(make_publication(msg, 0, offset, 1e12), None, live=True)
        await _turns(1)
        transport.read_all()
    while node.fanout.replaying(conn):
        await _turns()
        transport.read_all()
    frames = _frames(b"".join(transport.received))
    reply = next(f for f in frames if f.get("request_id") == "q")
    assert reply["recovered"] is True
    assert frames.index(reply) == 1  # right after connected, before any push
    assert [f["payload"]["o"] for f in frames if "payload" in f] == list(range(100, 340))


def test_a_since_older_than_the_history_replays_what_it_still_holds() -> None:
    history = History(5, 1e9)
    history.start(0, 0)
    dispatcher: Dispatcher[Session] = Dispatcher(Hub(), history, Limits(2, 4))
    for offset in range(20):  # fewer than a trim's worth: the index still holds them all
        msg = Message(None, None, None, {"p": 0, "o": offset}, f"m{offset}", "x")
        publication = make_publication(msg, 0, offset, 1e12)
        history.append(publication)
        dispatcher.index.add(publication)
    opened = dispatcher.open(_session(), ConnectRequest([], [], [], {0: -1}), now=0)
    assert opened.recovered is False
    assert _read_all(dispatcher.index, opened.replay) == [(0, o) for o in range(15, 20)]


def _seconds(work: Any) -> float:
    # CPU time of this process: other processes on the machine do not count; nor does
    # the cyclic GC, whose pauses follow the heap's size, not the work measured.
    gc.disable()
    try:
        started = time.process_time()
        work()
        return time.process_time() - started
    finally:
        gc.enable()


def test_trimming_costs_what_is_let_go_of_not_the_number_of_rooms() -> None:
    def index_of(rooms: int) -> tuple[ReplayIndex, list[int]]:
        floor = [0]
        index = ReplayIndex(lambda _: floor[0])
        for offset in range(rooms):
            msg = Message(None, None, f"room-{offset}", {"o": offset}, f"m{offset}", "x")
            index.add(make_publication(msg, 0, offset, 1e12))
        return index, floor

    def trims(index: ReplayIndex, floor: list[int]) -> None:
        for _ in range(2_000):  # each lets go of one publication
            floor[0] += 1
            index.trim()

    small, small_floor = index_of(5_000)
    large, large_floor = index_of(50_000)
    ratio = _seconds(partial(trims, large, large_floor)) / _seconds(
        partial(trims, small, small_floor)
    )
    assert ratio < 4, ratio  # a walk over every room's list would be 10x
    assert large.dropped(0) == 1_999


async def test_a_client_piling_up_replays_it_does_not_read_is_slow() -> None:
    node = _node()
    node.start_partition(0, 0)
    for offset in range(2000):
        topic = "t" if offset % 2 else None  # room messages, half of them on topic t
        msg = Message(topic, "e", "r", {"p": 0, "o": offset, "pad": "x" * 600}, "m", "x")
        node.publish(make_publication(msg, 0, offset, 1e12), None, live=True)
    transport = PacedTransport()
    claims = TokenClaims("u", "d", "j", 0, 2**31)
    conn = Connection(node, cast(Any, transport), claims, TokenBucket(1e6, 1e6, 0), 0.0)
    transport.protocol = conn
    node.open(conn, ConnectRequest(["r"], [], [], {0: -1}))
    await _turns()
    assert conn.paused  # it does not read
    for i in range(2000):  # subscribe/unsubscribe with since: replays it never reads
        action = "subscribe" if i % 2 == 0 else "unsubscribe"
        body = f'{{"request_id":"{i}","action":"{action}","params":{{"topic":"t","since":"0:-1"}}}}'
        node.handle_text(conn, body.encode())
        if conn.closed:
            break
    assert conn.closed
    assert transport.buffered[-1] == close_frame(4008, "slow consumer")


async def test_a_burst_of_since_subscriptions_during_a_replay_is_served_in_full() -> None:
    node = _node(request_rate=10_000, max_subscriptions=64)
    node.start_partition(0, 0)
    topics = [f"t{i}" for i in range(64)]
    for offset in range(3000):
        msg = Message(topics[offset % 64], "e", None, {"p": 0, "o": offset}, "m", "x")
        if offset % 3 == 0:  # and a room to replay at connect
            msg = Message(None, None, "r", {"p": 0, "o": offset, "pad": "x" * 600}, "m", "x")
        node.publish(make_publication(msg, 0, offset, 1e12), None, live=True)
    conn, transport = _paced(node)
    node.open(conn, ConnectRequest(["r"], [], [], {0: -1}))
    await _turns()
    assert conn.paused
    for i, topic in enumerate(topics):  # an app subscribing to everything it shows
        body = f'{{"request_id":"{i}","action":"subscribe","params":{{"topic":"{topic}","since":"0:-1"}}}}'
        node.handle_text(conn, body.encode())
    assert not conn.closed
    while node.fanout.replaying(conn):
        transport.read_all()
        await _turns()
    transport.read_all()
    pushes = [f for f in _frames(b"".join(transport.received)) if "payload" in f]
    assert sorted(f["payload"]["o"] for f in pushes) == list(range(3000))
    for topic in topics:  # per topic, in order
        offsets = [f["payload"]["o"] for f in pushes if f.get("topic") == topic]
        assert offsets == sorted(offsets)
