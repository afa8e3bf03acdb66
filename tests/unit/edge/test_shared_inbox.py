"""Shared ingest's receiving rules, pure: the inbox, the route format, the hub's wants
and the dispatcher's coverage of channels taken up late."""

from __future__ import annotations

import orjson

from roomcast_core.tokens import TokenClaims
from roomcast_core.wire import Message
from roomcast_edge.domain.deep_replay import DeepJob
from roomcast_edge.domain.dispatch import ConnectRequest, Dispatcher, Limits
from roomcast_edge.domain.history import History
from roomcast_edge.domain.hub import Hub
from roomcast_edge.domain.inbox import Inbox
from roomcast_edge.domain.publication import Publication, make_publication
from roomcast_edge.domain.ratelimit import TokenBucket
from roomcast_edge.domain.replay_index import BROADCAST, Address
from roomcast_edge.domain.routing import (
    Routed,
    RouteError,
    Watermark,
    channel_of,
    channel_prefix,
    channel_runs,
    decode,
    encode_batch,
    encode_watermark,
)
from roomcast_edge.domain.session import Session

ROOM: Address = ("room", "a")


class FakeNode:
    """The node's side the inbox uses, with the history's keep-each-offset-once rule."""

    def __init__(self) -> None:
        self.history = History(1000, 1e9)
        self.pushed: list[tuple[int, int]] = []
        self.live = False

    def start_partition(self, partition: int, first_offset: int) -> None:
        self.history.start(partition, first_offset)

    def reset_partition(self, partition: int, first_offset: int) -> None:
        self.history.reset(partition, first_offset)

    def gap(self, partition: int, first_offset: int) -> None:
        self.history.reset(partition, first_offset)

    def publish(self, publication: Publication, receive_epoch: float | None, live: bool) -> int:
        if self.history.append(publication):
            self.pushed.append((publication.partition, publication.offset))
        return 0

    def go_live(self) -> None:
        self.live = True

    def skip(self, partition: int, offset: int) -> None:
        self.history.advance(partition, offset)


def _routed(partition: int, offset: int, room: str | None = None) -> Routed:
    message = Message(None, None, room, {"o": offset}, f"m{offset}", "t")
    return Routed(make_publication(message, partition, offset, 1e12), None)


def _started(partitions: int = 1, at: int = 9) -> tuple[Inbox, FakeNode]:
    node = FakeNode()
    inbox = Inbox(node, node.history.positions)
    inbox.confirmed(BROADCAST)
    inbox.watermark(Watermark(partitions, dict.fromkeys(range(partitions), at)))
    return inbox, node


def test_partitions_start_at_their_first_watermark_and_go_live_with_the_last() -> None:
    node = FakeNode()
    inbox = Inbox(node, node.history.positions)
    inbox.confirmed(BROADCAST)
    inbox.receive(_routed(0, 3))  # before any watermark: nothing is promised yet
    inbox.watermark(Watermark(2, {0: 4}))
    live_before = node.live
    inbox.watermark(Watermark(2, {1: -1}))
    assert (live_before, node.live) == (False, True)
    assert node.history.positions() == {0: 4, 1: -1}
    assert node.pushed == []


def test_without_a_gap_messages_and_watermarks_go_straight_in() -> None:
    inbox, node = _started()
    inbox.receive(_routed(0, 10))
    inbox.receive(_routed(0, 10))  # routed twice around a takeover: kept once
    inbox.watermark(Watermark(1, {0: 15}))
    assert node.pushed == [(0, 10)]
    assert node.history.positions() == {0: 15}


def test_a_channel_taken_up_holds_the_partition_until_its_gap_is_filled() -> None:
    inbox, node = _started()
    inbox.hold(ROOM)
    assert inbox.covered_after([ROOM]) == {0: 9}
    inbox.receive(_routed(0, 11))  # a broadcast arriving before the room's confirmation
    inbox.confirmed(ROOM)
    assert inbox.next_read() is None  # no offset seen since the confirmation yet
    inbox.receive(_routed(0, 13, "a"))  # the first after it: nothing of the room beyond
    inbox.receive(_routed(0, 14))
    assert node.pushed == []
    read = inbox.next_read()
    assert read is not None
    assert (read.partition, read.after, read.upto, read.keys) == (0, 9, 13, frozenset({ROOM}))
    assert inbox.next_read() is None  # being read
    # The bus holds 10 and 12 of the room (missed) and 13 (also routed).
    inbox.filled(read, [_routed(0, 10, "a"), _routed(0, 12, "a"), _routed(0, 13, "a")])
    assert node.pushed == [(0, 10), (0, 11), (0, 12), (0, 13), (0, 14)]
    inbox.receive(_routed(0, 15, "a"))
    assert node.pushed[-1] == (0, 15)


def test_a_watermark_after_the_confirmation_ends_the_gap_and_moves_the_position() -> None:
    inbox, node = _started()
    inbox.hold(ROOM)
    inbox.confirmed(ROOM)
    inbox.watermark(Watermark(1, {0: 20}))
    read = inbox.next_read()
    assert read is not None
    assert read.upto == 20
    inbox.filled(read, [])
    assert node.history.positions() == {0: 20}


def test_a_channel_added_while_a_gap_is_read_is_read_in_a_round_of_its_own() -> None:
    inbox, node = _started()
    other: Address = ("topic", "t")
    inbox.hold(ROOM)
    inbox.confirmed(ROOM)
    inbox.watermark(Watermark(1, {0: 12}))
    first = inbox.next_read()
    assert first is not None
    inbox.hold(other)  # same gap start: the partition has not moved
    assert inbox.covered_after([other]) == {0: 9}
    inbox.filled(first, [_routed(0, 11, "a")])
    assert node.pushed == []  # the topic's gap is still open
    inbox.receive(_routed(0, 14, "a"))  # the room is live: queued
    inbox.confirmed(other)
    inbox.watermark(Watermark(1, {0: 16}))
    second = inbox.next_read()
    assert second is not None
    assert (second.after, second.upto, second.keys) == (9, 16, frozenset({other}))
    topic_msg = Routed(make_publication(Message("t", None, None, 1, "m", "t"), 0, 15, 1e12), None)
    inbox.filled(second, [topic_msg])
    assert node.pushed == [(0, 11), (0, 14), (0, 15)]
    assert node.history.positions() == {0: 16}


def test_a_lost_link_reopens_every_channel_and_voids_reads_in_flight() -> None:
    inbox, node = _started()
    inbox.hold(ROOM)
    inbox.confirmed(ROOM)
    inbox.watermark(Watermark(1, {0: 12}))
    read = inbox.next_read()
    assert read is not None
    inbox.lost()
    inbox.filled(read, [_routed(0, 11, "a")])  # kept, but not enough any more
    assert node.pushed == []
    inbox.confirmed(BROADCAST)
    inbox.confirmed(ROOM)
    inbox.watermark(Watermark(1, {0: 30}))
    again = inbox.next_read()
    assert again is not None
    assert (again.after, again.upto, again.keys) == (9, 30, frozenset({ROOM, BROADCAST}))
    inbox.filled(again, [_routed(0, 25)])
    assert node.pushed == [(0, 11), (0, 25)]
    assert node.history.positions() == {0: 30}


def test_releasing_the_only_channel_of_a_gap_lets_the_partition_go_on() -> None:
    inbox, node = _started()
    inbox.hold(ROOM)
    inbox.receive(_routed(0, 10))
    inbox.release(ROOM)
    assert node.pushed == [(0, 10)]


def test_route_format_round_trip_and_refusals() -> None:
    items = [_routed(2, 7, "é"), _routed(1, 3)]
    back = decode(encode_batch(items))
    assert isinstance(back, list)
    assert [(r.publication.partition, r.publication.offset, r.publication.room) for r in back] == [
        (2, 7, "é"),
        (1, 3, None),
    ]
    assert back[0].publication.frame == items[0].publication.frame
    mark = decode(encode_watermark(3, {0: 5, 2: -1}))
    assert mark == Watermark(3, {0: 5, 2: -1})
    for bad in (b"", b"X", b"M\x00", encode_batch(items)[:-1]):
        try:
            decode(bad)
        except RouteError:
            continue
        raise AssertionError(f"{bad!r} was read")


def test_a_partition_goes_out_in_offset_order_whatever_its_channels() -> None:
    """Grouping a batch by channel would send a later offset of one channel before an
    earlier one of another, which the receiver would then drop as seen."""
    items = [_routed(0, 1, "a"), _routed(0, 2, "a"), _routed(0, 3, "b"), _routed(0, 4, "a")]
    sent = list(channel_runs("p.", items))
    assert [name for name, _ in sent] == ["p.r.a", "p.r.b", "p.r.a"]
    offsets = []
    for _, payload in sent:
        batch = decode(payload)
        assert isinstance(batch, list)
        offsets += [r.publication.offset for r in batch]
    assert offsets == [1, 2, 3, 4]


def test_one_channel_per_key() -> None:
    prefix = channel_prefix("s")
    names = {channel_of(prefix, k) for k in (("room", "x"), ("topic", "x"), BROADCAST)}
    assert len(names) == 3
    assert all("{" not in name for name in names)  # no hash tag: channels spread


def test_the_hub_tells_first_and_last_wants() -> None:
    hub: Hub[str] = Hub()
    heard: list[tuple[tuple[str, str], bool]] = []
    hub.on_wanted = lambda key, wanted: heard.append((key, wanted))
    for conn in ("c1", "c2"):
        hub.add(conn)
        hub.join(conn, "r")
        hub.subscribe(conn, "t", "x")
    hub.subscribe("c1", "t", "*")
    assert heard == [(("room", "r"), True), (("topic", "t"), True)]
    hub.unsubscribe("c1", "t", "x")
    hub.remove("c1")
    assert len(heard) == 2
    hub.leave("c2", "r")
    hub.remove("c2")
    assert heard[2:] == [(("room", "r"), False), (("topic", "t"), False)]


def _session() -> Session:
    return Session(TokenClaims("u", "d", "j", 0, 2**31), TokenBucket(100, 100, 0))


def test_a_since_inside_a_channels_gap_is_recovered_from_the_bus_only() -> None:
    history = History(1000, 1e9)
    history.start(0, 0)
    dispatcher: Dispatcher[Session] = Dispatcher(Hub(), history, Limits(2, 4))
    for offset in range(10):
        msg = Message(None, None, "other", {}, f"m{offset}", "x")
        publication = make_publication(msg, 0, offset, 1e12)
        history.append(publication)
        dispatcher.index.add(publication)
    # The room's channel was taken up at offset 9: the history has none of it before.
    dispatcher.coverage = lambda keys: {0: 9} if ("room", "a") in keys else {}
    request = ConnectRequest(["a"], [], [], {0: 4})
    opened = dispatcher.open(_session(), request, now=0)
    assert orjson.loads(opened.hello)["recovered"] is False
    dispatcher.known_log_start = lambda: {0: 0}
    opened = dispatcher.open(_session(), request, now=0)
    assert orjson.loads(opened.hello)["recovered"] is True
    job = opened.replay[0]
    assert isinstance(job, DeepJob)
    assert job.pending() == (0, 4, 9)  # read from the bus up to the gap's end
    covered = ConnectRequest(["a"], [], [], {0: 9})
    assert orjson.loads(dispatcher.open(_session(), covered, now=0).hello)["recovered"] is True
