"""Recent publications per partition, for recovery, bounded by count and by age.

For each partition the history knows `floor`: every record at or after it that the
edge consumed is still here (undecodable records are skipped but still count as
seen). A client that last saw offset `s` can be served exactly when `s + 1 >= floor`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice

from roomcast_edge.domain.publication import Publication


@dataclass(slots=True)
class _Partition:
    floor: int
    last: int  # offset of the last record consumed, floor - 1 when none yet
    entries: deque[Publication] = field(default_factory=deque)


class History:
    def __init__(self, size: int, max_age: float) -> None:
        self._size = size
        self._max_age = max_age
        self._partitions: dict[int, _Partition] = {}

    def start(self, partition: int, first_offset: int) -> None:
        """The edge reads `partition` from `first_offset` on; earlier records are unknown."""
        self._partitions[partition] = _Partition(floor=first_offset, last=first_offset - 1)

    @property
    def partitions(self) -> list[int]:
        return sorted(self._partitions)

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
        while len(state.entries) > self._size:
            state.floor = state.entries.popleft().offset + 1
        return True

    def expire(self, now: float) -> None:
        """Forget publications older than the age limit."""
        oldest_kept = now - self._max_age
        for state in self._partitions.values():
            entries = state.entries
            while entries and entries[0].timestamp < oldest_kept:
                state.floor = entries.popleft().offset + 1
            if not entries:
                # Nothing left: only what comes next is known.
                state.floor = max(state.floor, state.last + 1)

    def covers(self, since: Mapping[int, int], partitions: list[int] | None = None) -> bool:
        """Whether every message after `since` (missing partitions = -1) is still here."""
        for partition in self._partitions if partitions is None else partitions:
            state = self._partitions.get(partition)
            if state is None:
                return False
            if since.get(partition, -1) + 1 < state.floor:
                return False
        return all(p in self._partitions for p in since)

    def after(self, since: Mapping[int, int]) -> Iterator[Publication]:
        """Publications after `since`, partition by partition, in offset order."""
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
