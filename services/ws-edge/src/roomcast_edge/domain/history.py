"""Recent publications per partition, for recovery, bounded by count, bytes and age.

For each partition the history knows `floor`: every record at or after it that the
edge consumed is still here (undecodable records are skipped but still count as
seen). A client that last saw offset `s` can be served exactly when `s + 1 >= floor`.

The count bound is per partition; the byte bound is for all partitions together
(memory is what it protects), evicting the oldest publication of any partition
first. The age bound is applied by `expire`, which the edge calls on a timer.

When Kafka's offsets go backwards (`reset`), offsets read before and after the reset
name different records. A vector cannot say which side it comes from, so for a reset
partition any entry up to the highest offset read before the reset is not trusted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice

from roomcast_edge.domain.publication import Publication

# What one kept publication costs besides its frame: the object, its topic, type and
# room strings, its deque slot and an index reference (measured with tracemalloc at
# ~330 bytes). Counted so the byte bound holds for many small messages too.
ENTRY_OVERHEAD = 352


@dataclass(slots=True)
class _Partition:
    floor: int
    last: int  # offset of the last record consumed, floor - 1 when none yet
    entries: deque[Publication] = field(default_factory=deque)
    bytes: int = 0
    # Highest offset read before the last reset; entries up to it are ambiguous.
    reset_mark: int | None = None


def entry_bytes(publication: Publication) -> int:
    return len(publication.frame) + ENTRY_OVERHEAD


class History:
    def __init__(self, size: int, max_age: float, max_bytes: int | None = None) -> None:
        self._size = size
        self._max_age = max_age
        self._max_bytes = max_bytes
        self._partitions: dict[int, _Partition] = {}
        self._bytes = 0
        self._any_reset = False

    def start(self, partition: int, first_offset: int) -> None:
        """The edge reads `partition` from `first_offset` on; earlier records are unknown."""
        old = self._partitions.get(partition)
        state = _Partition(floor=first_offset, last=first_offset - 1)
        if old is not None:
            self._bytes -= old.bytes
            state.reset_mark = old.reset_mark
        self._partitions[partition] = state

    def reset(self, partition: int, first_offset: int) -> None:
        """Kafka's offsets went backwards: forget the partition, read on from `first_offset`.

        Every vector entry up to the highest offset read so far stays ambiguous.
        """
        old = self._partitions.get(partition)
        marks = [first_offset - 1]
        if old is not None:
            marks.append(old.last)
            if old.reset_mark is not None:
                marks.append(old.reset_mark)
        self.start(partition, first_offset)
        self._partitions[partition].reset_mark = max(marks)
        self._any_reset = True

    @property
    def partitions(self) -> list[int]:
        return sorted(self._partitions)

    @property
    def bytes(self) -> int:
        """What the kept publications cost, all partitions together."""
        return self._bytes

    def __len__(self) -> int:
        return sum(len(state.entries) for state in self._partitions.values())

    def positions(self) -> dict[int, int]:
        """The offset last consumed per partition (-1 when the partition is empty)."""
        return {p: state.last for p, state in self._partitions.items()}

    def advance(self, partition: int, offset: int) -> None:
        """A record was consumed (decodable or not)."""
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = _Partition(floor=offset, last=offset - 1)
        if offset > state.last:
            state.last = offset

    def append(self, publication: Publication) -> bool:
        """Keep a publication; False (and nothing kept) when its offset was seen already."""
        state = self._partitions.get(publication.partition)
        if state is not None and publication.offset <= state.last:
            return False
        self.advance(publication.partition, publication.offset)
        state = self._partitions[publication.partition]
        state.entries.append(publication)
        size = entry_bytes(publication)
        state.bytes += size
        self._bytes += size
        while len(state.entries) > self._size:
            self._evict(state)
        if self._max_bytes is not None and self._bytes > self._max_bytes:
            self._shrink(self._max_bytes)
        return True

    def _evict(self, state: _Partition) -> None:
        gone = state.entries.popleft()
        size = entry_bytes(gone)
        state.bytes -= size
        self._bytes -= size
        state.floor = gone.offset + 1
        if not state.entries:
            # Nothing left: only what comes next is known.
            state.floor = max(state.floor, state.last + 1)

    def _shrink(self, budget: int) -> None:
        """Evict the oldest publications, whatever their partition, until within budget."""
        states = [s for s in self._partitions.values() if s.entries]
        while self._bytes > budget and states:
            oldest = min(states, key=lambda s: (s.entries[0].timestamp, s.entries[0].offset))
            self._evict(oldest)
            if not oldest.entries:
                states.remove(oldest)

    def expire(self, now: float) -> None:
        """Forget publications older than the age limit."""
        oldest_kept = now - self._max_age
        for state in self._partitions.values():
            entries = state.entries
            while entries and entries[0].timestamp < oldest_kept:
                self._evict(state)
            if not entries:
                state.floor = max(state.floor, state.last + 1)

    def covers(self, since: Mapping[int, int], partitions: list[int] | None = None) -> bool:
        """Whether every message after `since` (missing partitions = -1) is still here."""
        for partition in self._partitions if partitions is None else partitions:
            state = self._partitions.get(partition)
            if state is None:
                return False
            seen = since.get(partition, -1)
            if seen + 1 < state.floor:
                return False
            if state.reset_mark is not None and seen <= state.reset_mark:
                return False
        return all(p in self._partitions for p in since)

    def ambiguous(self, since: Mapping[int, int]) -> bool:
        """Whether an entry of `since` may name a record of a log from before a reset."""
        for partition, state in self._partitions.items():
            mark = state.reset_mark
            if mark is not None and since.get(partition, -1) <= mark:
                return True
        return False

    def rebase(self, since: Mapping[int, int]) -> dict[int, int]:
        """`since` with the entries a reset made meaningless replaced by "nothing seen".

        An entry beyond what this edge read on a reset partition, but not beyond what
        it read before the reset, most likely names a record of the old offsets: the
        client has seen none of the new ones, which are replayed, not skipped.
        """
        rebased = dict(since)
        for partition, seen in since.items():
            state = self._partitions.get(partition)
            if state is None or state.reset_mark is None:
                continue
            if state.last < seen <= state.reset_mark:
                rebased[partition] = -1
        return rebased

    def ahead(self, since: Mapping[int, int]) -> dict[int, int]:
        """The entries of `since` beyond what this edge has read.

        Such a vector comes from an edge further along: the client already has those
        records, which must not reach it twice.
        """
        if self._any_reset:
            since = self.rebase(since)
        ahead: dict[int, int] = {}
        for partition, seen in since.items():
            state = self._partitions.get(partition)
            if seen > (state.last if state is not None else -1):
                ahead[partition] = seen
        return ahead

    def after(self, since: Mapping[int, int]) -> Iterator[Publication]:
        """Publications after `since`, partition by partition, in offset order
        (what the holder of `since` has not seen, see `rebase`)."""
        if self._any_reset:
            since = self.rebase(since)
        for partition in sorted(self._partitions):
            seen = since.get(partition, -1)
            entries = self._partitions[partition].entries
            if not entries or entries[-1].offset <= seen:
                continue
            if entries[0].offset > seen:
                yield from entries
                continue
            yield from _tail_after(entries, seen)


def _tail_after(entries: deque[Publication], seen: int) -> Iterator[Publication]:
    # Offsets increase along the deque: binary search for the first one after `seen`.
    lo, hi = 0, len(entries)
    while lo < hi:
        mid = (lo + hi) // 2
        if entries[mid].offset <= seen:
            lo = mid + 1
        else:
            hi = mid
    yield from islice(entries, lo, None)
