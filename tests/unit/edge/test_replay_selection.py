"""What a replay reads: only what can match, nothing of what the session left."""

from __future__ import annotations

from functools import partial

import orjson

from roomcast_core.wire import Message
from roomcast_edge.domain.frames import frame_payload
from roomcast_edge.domain.history import History
from roomcast_edge.domain.history_view import oldest_kept
from roomcast_edge.domain.publication import Publication, make_publication
from roomcast_edge.domain.replay import ReplayJob, Selector
from roomcast_edge.domain.replay_index import ReplayIndex
from roomcast_edge.domain.rewind import rewind_since


def _pub(offset: int, room: str | None, topic: str | None, type_: str | None) -> Publication:
    msg = Message(topic, type_, room, {"o": offset}, f"m{offset}", "x")
    return make_publication(msg, 0, offset, 1e9 + offset)


def _index(publications: list[Publication]) -> ReplayIndex:
    history = History(10**6, 1e12)
    history.start(0, 0)
    index = ReplayIndex(partial(oldest_kept, history))
    for publication in publications:
        history.append(publication)
        index.add(publication)
    return index


def _offsets(frames: list[bytes]) -> list[int]:
    return [orjson.loads(frame_payload(f))["payload"]["o"] for f in frames]


def test_a_type_nobody_published_costs_nothing_however_long_its_topic() -> None:
    index = _index([_pub(o, None, "flood", "a") for o in range(50_000)])
    nobody = Selector.everything(frozenset(), frozenset({("flood", "nobody")}))
    assert index.count(0, nobody.keys(), -1, None) == 0
    assert list(index.read(0, nobody.keys(), -1)) == []
    # A room alone does not read the topic messages of that room either.
    in_room = _index(
        [_pub(o, "r", "flood", "a") for o in range(1000)] + [_pub(1000, "r", None, None)]
    )
    room_only = Selector.everything(frozenset({"r"}), frozenset())
    assert [p.offset for p in in_room.read(0, room_only.keys(), -1)] == [1000]


def test_a_wildcard_and_a_type_of_one_topic_read_each_message_once() -> None:
    pubs = [_pub(o, "r" if o % 2 else None, "t", "a" if o % 3 else "b") for o in range(30)]
    index = _index(pubs)
    both = Selector.everything(frozenset({"r"}), frozenset({("t", "*"), ("t", "a")}))
    offsets = [p.offset for p in index.read(0, both.keys(), -1)]
    assert offsets == list(range(30))


def test_a_narrowed_job_sends_nothing_of_a_room_left() -> None:
    pubs = [_pub(o, "left" if o % 2 else "kept", None, None) for o in range(100)]
    index = _index(pubs)
    selector = Selector.everything(frozenset({"left", "kept"}), frozenset())
    job = ReplayJob(index, selector, {0: -1}, None)
    frames: list[bytes] = []
    job.read(index, frames, 10**9, 10)  # the first ten, both rooms
    job.narrow(frozenset({"kept"}), frozenset())
    job.read(index, frames, 10**9, 10**6)
    sent = _offsets(frames)
    assert sent[:10] == list(range(10))
    assert sent[10:] == list(range(10, 100, 2))


def test_rewind_counts_older_records_found_on_the_bus() -> None:
    # The history holds offsets 10 and 11 of the room; the bus found 3..9 before it.
    index = _index([_pub(o, "r", None, None) for o in (10, 11)] + [_pub(12, "x", None, None)])
    selector = Selector.everything(frozenset({"r"}), frozenset())
    older = {0: [(1e9 + o, o) for o in range(3, 10)]}
    assert rewind_since(index, selector, 5, {0: 12}, older) == {0: 6}
    # Up to a position: what came later is not counted (it is sent as live).
    assert rewind_since(index, selector, 5, {0: 10}, older) == {0: 5}
