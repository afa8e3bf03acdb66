"""The recovery history's bounds (count, bytes, age) and resets of Kafka's offsets."""

from __future__ import annotations

from roomcast_edge.adapters.kafka_source import fill_start
from roomcast_edge.domain.history import ENTRY_OVERHEAD, History, entry_bytes
from roomcast_edge.domain.publication import Publication


def _pub(partition: int, offset: int, size: int = 100, timestamp: float = 1000.0) -> Publication:
    return Publication(partition, offset, None, None, None, b"x" * size, timestamp)


def _offsets(history: History, since: dict[int, int] | None = None) -> list[tuple[int, int]]:
    return [(p.partition, p.offset) for p in history.after(since or {})]


def test_entry_cost_counts_the_frame_and_the_object() -> None:
    assert entry_bytes(_pub(0, 0, size=1000)) == 1000 + ENTRY_OVERHEAD


def test_byte_bound_holds_across_partitions_and_evicts_the_oldest_first() -> None:
    cost = entry_bytes(_pub(0, 0))
    history = History(size=1000, max_age=60, max_bytes=10 * cost)
    history.start(0, 0)
    history.start(1, 0)
    # Interleaved in time: partition 0 at even seconds, partition 1 at odd ones.
    for i in range(8):
        history.append(_pub(0, i, timestamp=1000 + 2 * i))
        history.append(_pub(1, i, timestamp=1001 + 2 * i))
        assert history.bytes <= 10 * cost
    assert history.bytes == 10 * cost
    assert _offsets(history) == [(0, i) for i in range(3, 8)] + [(1, i) for i in range(3, 8)]
    # The floor follows the eviction on both partitions: exactly what is gone is refused.
    assert history.covers({0: 2, 1: 2})
    assert not history.covers({0: 1, 1: 2})
    assert not history.covers({0: 2, 1: 1})
    assert history.positions() == {0: 7, 1: 7}


def test_big_messages_push_out_many_small_ones() -> None:
    small = entry_bytes(_pub(0, 0, size=10))
    history = History(size=1000, max_age=60, max_bytes=100 * small)
    history.start(0, 0)
    for i in range(100):
        history.append(_pub(0, i, size=10))
    assert len(history) == 100
    history.append(_pub(0, 100, size=50 * small))
    assert history.bytes <= 100 * small
    kept = [offset for _, offset in _offsets(history)]
    assert kept[-1] == 100
    assert kept == list(range(kept[0], 101))
    assert len(kept) < 60
    assert history.covers({0: kept[0] - 1})
    assert not history.covers({0: kept[0] - 2})


def test_a_publication_over_the_whole_budget_is_not_kept_and_not_claimed() -> None:
    history = History(size=1000, max_age=60, max_bytes=1000)
    history.start(0, 0)
    history.append(_pub(0, 0, size=10))
    history.append(_pub(0, 1, size=5000))
    assert history.bytes == 0
    assert _offsets(history) == []
    assert history.positions() == {0: 1}
    # Nothing held: a client that saw offset 1 misses nothing, one that saw 0 does.
    assert history.covers({0: 1})
    assert not history.covers({0: 0})
    history.append(_pub(0, 2, size=10))
    assert _offsets(history, {0: 1}) == [(0, 2)]
    assert history.covers({0: 1})


def test_count_bound_is_per_partition_and_releases_bytes() -> None:
    history = History(size=3, max_age=60, max_bytes=10**9)
    history.start(0, 0)
    history.start(1, 0)
    for i in range(5):
        history.append(_pub(0, i))
    history.append(_pub(1, 0))
    assert history.bytes == 4 * entry_bytes(_pub(0, 0))
    assert _offsets(history) == [(0, 2), (0, 3), (0, 4), (1, 0)]
    assert not history.covers({0: 0, 1: -1})
    assert history.covers({0: 1, 1: -1})


def test_age_bound_releases_bytes_and_keeps_covers_honest() -> None:
    history = History(size=100, max_age=10, max_bytes=10**9)
    history.start(0, 0)
    history.start(1, 0)
    history.append(_pub(0, 0, timestamp=100))
    history.append(_pub(1, 0, timestamp=101))
    history.append(_pub(0, 1, timestamp=108))
    history.expire(now=111.5)
    assert _offsets(history) == [(0, 1)]
    assert history.bytes == entry_bytes(_pub(0, 1))
    assert not history.covers({0: -1, 1: 0})
    assert history.covers({0: 0, 1: 0})
    # Partition 1 is empty now: a client that saw nothing of it has missed offset 0.
    assert not history.covers({0: 0, 1: -1})
    history.expire(now=1000)
    assert history.bytes == 0
    assert history.covers({0: 1, 1: 0})
    assert not history.covers({0: 0, 1: 0})


def test_without_a_byte_bound_only_count_and_age_apply() -> None:
    history = History(size=2, max_age=60)
    history.start(0, 0)
    for i in range(4):
        history.append(_pub(0, i, size=10_000))
    assert _offsets(history) == [(0, 2), (0, 3)]


def test_reset_forgets_the_partition_and_refuses_every_earlier_vector() -> None:
    history = History(size=100, max_age=60, max_bytes=10**9)
    history.start(0, 0)
    history.start(1, 0)
    for i in range(10):
        history.append(_pub(0, i))
    history.append(_pub(1, 0))
    old_vector = {0: 9, 1: 0}
    assert history.covers(old_vector)

    history.reset(0, 0)  # the topic was re-created: offsets start again at 0
    assert history.positions() == {0: -1, 1: 0}
    assert history.bytes == entry_bytes(_pub(1, 0))
    assert not history.covers(old_vector)
    assert not history.covers({0: 4, 1: 0})
    assert not history.covers({1: 0})  # partition 0 missing counts as -1: ambiguous too
    # The new offsets are read and kept again, and pushed (append says they are new).
    assert history.append(_pub(0, 0))
    assert history.append(_pub(0, 1))
    assert _offsets(history, {0: -1, 1: 0}) == [(0, 0), (0, 1)]
    # An entry beyond this edge's new offsets names the old ones: replay the new ones.
    assert history.rebase(old_vector) == {0: -1, 1: 0}
    assert history.rebase({0: 1, 1: 0}) == {0: 1, 1: 0}
    assert _offsets(history, old_vector) == [(0, 0), (0, 1)]
    assert history.ahead(old_vector) == {}
    assert history.ahead({0: 5, 1: 3}) == {1: 3}
    # Once the new offsets pass the old ones, entries beyond them are trusted again.
    for i in range(2, 12):
        history.append(_pub(0, i))
    assert not history.covers({0: 9, 1: 0})
    assert history.covers({0: 10, 1: 0})
    assert history.rebase({0: 10, 1: 0}) == {0: 10, 1: 0}


def test_a_second_reset_keeps_the_highest_mark() -> None:
    history = History(size=100, max_age=60)
    history.start(0, 0)
    for i in range(20):
        history.append(_pub(0, i))
    history.reset(0, 0)
    for i in range(5):
        history.append(_pub(0, i))
    history.reset(0, 0)
    history.append(_pub(0, 0))
    assert not history.covers({0: 15})
    assert not history.covers({0: 3})
    assert history.rebase({0: 15}) == {0: -1}
    for i in range(1, 21):
        history.append(_pub(0, i))
    assert history.covers({0: 20})


def test_start_up_fill_reads_within_count_and_age() -> None:
    # (beginning, end, size, first young offset) -> first offset read
    assert fill_start(0, 1000, 100, 0) == 900  # count bound
    assert fill_start(0, 1000, 5000, 0) == 0  # all of it
    assert fill_start(0, 1000, 100, 950) == 950  # age bound is tighter
    assert fill_start(0, 1000, 100, 1000) == 1000  # nothing young: nothing read
    assert fill_start(500, 1000, 5000, 0) == 500  # retention already dropped the rest
    assert fill_start(0, 0, 100, 0) == 0  # empty partition


def test_entries_beyond_what_was_read_are_ahead() -> None:
    history = History(size=10, max_age=60)
    history.start(0, 0)
    history.append(_pub(0, 0))
    assert history.ahead({0: 0}) == {}
    assert history.ahead({0: 3, 4: 0}) == {0: 3, 4: 0}  # 4: not read here at all
    assert history.ahead({4: -1}) == {}
