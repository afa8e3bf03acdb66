"""The history's publications by address and type, so a replay reads only what can match.

Every publication has one address: its room when it has one, else its topic, else
the broadcast address. It sits in the list of its address and topic (every type)
and, when it has a topic, in the list of its address, topic and type as well. A
`join` replay then reads its room's lists, a `subscribe` replay the lists of its
topic and type in its rooms and outside them, a connect replay those of all its
rooms and subscriptions plus the broadcasts: what is read is what can match, and a
selection nobody published to costs nothing whatever the size of the history.

The index holds references to the history's own publications (no copy) and lets go
of them once the history has (`trim`, run every few thousand additions and on the
history's timer). Until then it may hold a little more than the history, never less;
`dropped(partition)` tells a reader whether what it had still to read is gone.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from roomcast_edge.domain.publication import Publication

Address = tuple[str, str]  # ("room", name), ("topic", name) or ("all", "")
BROADCAST: Address = ("all", "")
# One list of the index: (address, topic, type, every type). With `every type` the
# list holds the address's messages of that topic (None: those without a topic)
# whatever their type, and `type` is None; without it, only those of that type.
Key = tuple[Address, str | None, str | None, bool]

# Additions between two trims: what the index may hold beyond the history.
TRIM_EVERY = 4096
_COMPACT_AT = 1024


def address_of(publication: Publication) -> Address:
    if publication.room is not None:
        return ("room", publication.room)
    if publication.topic is not None:
        return ("topic", publication.topic)
    return BROADCAST


def keys_of(publication: Publication) -> tuple[Key, Key | None]:
    """The lists a publication sits in: every type of its topic, and its own type."""
    address, topic = address_of(publication), publication.topic
    whole: Key = (address, topic, None, True)
    return whole, (address, topic, publication.type, False) if topic is not None else None


def _offset(publication: Publication) -> int:
    return publication.offset


@dataclass(slots=True)
class _Run:
    """One key's publications of one partition, in offset order; `head` is the first kept."""

    items: list[Publication] = field(default_factory=list)
    head: int = 0

    def __len__(self) -> int:
        return len(self.items) - self.head

    def index_after(self, offset: int) -> int:
        return bisect.bisect_right(self.items, offset, lo=self.head, key=_offset)

    def pop_front(self) -> Publication:
        head = self.head
        first = self.items[head]
        self.head = head = head + 1
        if head >= _COMPACT_AT and head * 2 >= len(self.items):
            del self.items[:head]
            self.head = 0
        return first


@dataclass(slots=True)
class _Partition:
    runs: dict[Key, _Run] = field(default_factory=dict)
    # Every publication of the partition in offset order: trimming walks it from the
    # front, so it costs what is let go of, however many keys there are.
    order: _Run = field(default_factory=_Run)
    last: int = -1  # highest offset indexed
    floor: int = 0  # what the history held from at the last trim
    dropped: int = -1  # highest offset the index let go of
    epoch: int = 0  # changes when the partition starts over (offsets went backwards)


class ReplayIndex:
    def __init__(self, oldest_kept: Callable[[int], int | None]) -> None:
        """`oldest_kept(partition)`: the offset of the oldest publication the history
        still holds for that partition, None when it holds none."""
        self._oldest_kept = oldest_kept
        self._partitions: dict[int, _Partition] = {}
        self._since_trim = 0

    def add(self, publication: Publication) -> None:
        """A publication the history just kept (offsets increase per partition)."""
        partition = publication.partition
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _Partition()
        elif publication.offset <= state.last:
            self.forget_partition(partition)  # offsets went backwards: a new log
            state = self._partitions[partition]
        state.last = publication.offset
        runs = state.runs
        for key in keys_of(publication):
            if key is None:
                continue
            run = runs.get(key)
            if run is None:
                run = runs[key] = _Run()
            run.items.append(publication)
        state.order.items.append(publication)
        self._since_trim += 1
        if self._since_trim >= TRIM_EVERY:
            self.trim()

    def forget_partition(self, partition: int) -> None:
        """The partition starts over: nothing indexed for it means anything any more."""
        old = self._partitions.get(partition)
        self._partitions[partition] = _Partition(epoch=old.epoch + 1 if old else 0)

    def trim(self) -> None:
        """Let go of what the history no longer holds."""
        self._since_trim = 0
        for partition, state in self._partitions.items():
            oldest = self._oldest_kept(partition)
            floor = state.last + 1 if oldest is None else oldest
            if floor <= state.floor:
                continue
            state.floor = floor
            order, runs = state.order, state.runs
            while len(order) and order.items[order.head].offset < floor:
                gone = order.pop_front()
                for key in keys_of(gone):
                    if key is None:
                        continue
                    run = runs[key]
                    run.pop_front()  # the oldest of its list is the oldest of the partition
                    if not len(run):
                        del runs[key]
                state.dropped = gone.offset

    # ---- reading ----------------------------------------------------------

    @property
    def partitions(self) -> list[int]:
        return sorted(self._partitions)

    def dropped(self, partition: int) -> int:
        """The highest offset of the partition the index let go of (-1: none yet).

        A reader that had not passed it has lost what it was reading.
        """
        state = self._partitions.get(partition)
        return state.dropped if state is not None else -1

    def epoch(self, partition: int) -> int:
        state = self._partitions.get(partition)
        return state.epoch if state is not None else 0

    def count(self, partition: int, keys: list[Key], after: int, upto: int | None) -> int:
        """How many publications of these keys lie in (after, upto] of the partition."""
        state = self._partitions.get(partition)
        if state is None:
            return 0
        total = 0
        for key in keys:
            run = state.runs.get(key)
            if run is None:
                continue
            end = len(run.items) if upto is None else run.index_after(upto)
            total += max(0, end - run.index_after(after))
        return total

    def last(
        self,
        partition: int,
        keys: list[Key],
        matches: Callable[[Publication], bool],
        n: int,
        max_scan: int,
        upto: int | None = None,
    ) -> list[Publication]:
        """The latest `n` matching publications of the partition up to offset `upto`
        (None: the newest), in offset order.

        The lists are walked backwards together, newest first, at most `max_scan`
        entries of each: the cost is `n` plus what does not match, however many
        lists the selection names.
        """
        state = self._partitions.get(partition)
        if state is None or n <= 0:
            return []
        tails: list[Iterator[Publication]] = []
        for key in keys:
            run = state.runs.get(key)
            if run is None:
                continue
            items = run.items
            end = len(items) if upto is None else run.index_after(upto)
            first = max(run.head, end - max_scan)
            if end > first:
                tails.append(map(items.__getitem__, range(end - 1, first - 1, -1)))
        found: list[Publication] = []
        for publication in heapq.merge(*tails, key=_offset, reverse=True):
            if matches(publication):
                found.append(publication)
                if len(found) >= n:
                    break
        found.reverse()
        return found

    def read(self, partition: int, keys: list[Key], after: int) -> Iterator[Publication]:
        """Publications of these keys after `after`, in offset order (one partition).

        The iterator must be consumed before the index changes (no await in between).
        """
        state = self._partitions.get(partition)
        if state is None:
            return iter(())
        tails: list[Iterator[Publication]] = []
        for key in keys:
            run = state.runs.get(key)
            if run is None or run.items[-1].offset <= after:
                continue
            items = run.items
            # By index, not by slicing: nothing is copied however long the tail.
            tails.append(map(items.__getitem__, range(run.index_after(after), len(items))))
        if not tails:
            return iter(())
        if len(tails) == 1:
            return tails[0]
        return heapq.merge(*tails, key=_offset)
