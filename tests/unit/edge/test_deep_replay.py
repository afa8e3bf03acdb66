"""A replay whose older part comes from the bus: hand-over to the history, pins, rewind."""

from __future__ import annotations

from functools import partial

import orjson

from roomcast_core.wire import Message
from roomcast_edge.domain.deep_replay import DeepJob
from roomcast_edge.domain.frames import frame_payload
from roomcast_edge.domain.history import History
from roomcast_edge.domain.history_view import oldest_kept
from roomcast_edge.domain.publication import Publication, make_publication
from roomcast_edge.domain.replay import ReplayBehind, ReplayJob, Selector
from roomcast_edge.domain.replay_index import ReplayIndex
from roomcast_edge.domain.rewind import rewind_since


def _pub(offset: int, room: str = "r", timestamp: float = 1e9) -> Publication:
    msg = Message(None, None, room, {"o": offset}, f"m{offset}", "x")
    return make_publication(msg, 0, offset, timestamp + offset)


def _offsets(frames: list[bytes]) -> list[int]:
    return [orjson.loads(frame_payload(f))["payload"]["o"] for f in frames]


def _stream(size: int, count: int) -> tuple[History, ReplayIndex]:
    """A history of `size` over a stream of `count` records (offsets 0..count-1)."""
    history = History(size, 1e12)
    history.start(0, 0)
    index = ReplayIndex(partial(oldest_kept, history))
    for offset in range(count):
        publication = _pub(offset, "r" if offset % 2 == 0 else "other")
        history.append(publication)
        index.add(publication)
    index.trim()
    return history, index


def _targets(history: History, index: ReplayIndex) -> dict[int, int]:
    oldest = oldest_kept(history, 0)
    assert oldest is not None
    return {0: max(oldest - 1, index.dropped(0))}


def _bus(offsets: range) -> list[Publication]:
    return [_pub(o, "r" if o % 2 == 0 else "other") for o in offsets]


def test_the_bus_part_hands_over_to_the_history_with_no_gap_and_no_duplicate() -> None:
    history, index = _stream(10, 40)  # the history holds 30..39
    selector = Selector.everything(frozenset({"r"}), frozenset())
    inner = ReplayJob(index, selector, {0: 3}, None, {0: 30})
    job = DeepJob(index, selector, {0: 3}, inner, partial(_targets, history, index))
    frames: list[bytes] = []
    assert job.pending() == (0, 3, 29)
    assert job.waiting  # nothing read from the bus yet
    job.feed(0, [p for p in _bus(range(4, 20)) if job.wants(p.topic, p.type, p.room)], 19)
    assert job.read(index, frames, 1 << 20, 100) == (sum(len(f) for f in frames), 0, False)
    # More arrives in the history meanwhile and evicts: the target moves on.
    for offset in range(40, 46):
        publication = _pub(offset, "r" if offset % 2 == 0 else "other")
        history.append(publication)
        index.add(publication)
    index.trim()
    assert job.pending() == (0, 19, 35)
    job.feed(0, _bus(range(20, 36)), 35)
    while not job.read(index, frames, 1 << 20, 100)[2]:
        pass
    assert job.handed
    assert _offsets(frames) == list(range(4, 46, 2))


def test_a_pinned_deep_job_never_reads_past_its_pin() -> None:
    _, index = _stream(10, 40)
    selector = Selector.everything(frozenset({"r"}), frozenset())
    inner = ReplayJob(index, selector, {0: -1}, None, {0: 30})
    job = DeepJob(index, selector, {0: -1}, inner, lambda: {0: 29})
    job.pin({0: 9})
    assert job.pending() == (0, -1, 9)
    job.feed(0, _bus(range(10)), 9)
    assert job.pending() is None


def test_a_failed_bus_read_ends_the_replay() -> None:
    history, index = _stream(10, 40)
    selector = Selector.everything(frozenset({"r"}), frozenset())
    inner = ReplayJob(index, selector, {0: -1}, None, {0: 30})
    job = DeepJob(index, selector, {0: -1}, inner, partial(_targets, history, index))
    job.fail()
    try:
        job.read(index, [], 1 << 20, 100)
    except ReplayBehind:
        return
    raise AssertionError("a failed deep job read on")


def test_rewind_starts_right_before_the_latest_n_matching() -> None:
    history, index = _stream(100, 40)
    selector = Selector.everything(frozenset({"r"}), frozenset())
    since = rewind_since(index, selector, 3, history.positions())
    assert since == {0: 33}  # 34, 36, 38 are the latest three of room r
    job = ReplayJob(index, selector, since, history.positions())
    frames: list[bytes] = []
    job.read(index, frames, 1 << 20, 1000)
    assert _offsets(frames) == [34, 36, 38]
    assert rewind_since(index, selector, 0, history.positions()) == {0: 39}
