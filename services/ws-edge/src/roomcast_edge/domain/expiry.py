"""Deadlines of many connections, checked by one periodic sweep.

The rule this module keeps: an expiry costs nothing per message and no timer per
connection. Each item sits in a bucket keyed by the whole second of its deadline,
and a heap orders the seconds. Scheduling, moving (a token refresh) and cancelling
(a close) are O(1) plus O(log S) when a second gets its first item, S being the
number of distinct seconds pending. A sweep pops only the seconds that have passed,
so it costs O(items due + seconds passed); items far from their deadline are never
looked at. Only the bucket of the current second is read item by item, to keep
deadlines exact to the sub-second.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class ExpiryWheel(Generic[T]):
    def __init__(self) -> None:
        self._deadline: dict[T, float] = {}
        self._buckets: dict[int, set[T]] = {}
        # Seconds that may have a bucket; a second stays here (once) until a sweep
        # passes it, even if its bucket emptied, so it is never pushed twice.
        self._seconds: list[int] = []
        self._queued: set[int] = set()

    def __len__(self) -> int:
        return len(self._deadline)

    def __contains__(self, item: object) -> bool:
        return item in self._deadline

    def deadline(self, item: T) -> float | None:
        return self._deadline.get(item)

    def schedule(self, item: T, deadline: float) -> None:
        """Set item's deadline, replacing any earlier one."""
        self.cancel(item)
        second = math.floor(deadline)
        self._deadline[item] = deadline
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = set()
            if second not in self._queued:
                self._queued.add(second)
                heapq.heappush(self._seconds, second)
        bucket.add(item)

    def cancel(self, item: T) -> None:
        deadline = self._deadline.pop(item, None)
        if deadline is None:
            return
        second = math.floor(deadline)
        bucket = self._buckets[second]
        bucket.discard(item)
        if not bucket:
            del self._buckets[second]

    def due(self, now: float) -> list[T]:
        """Remove and return every item whose deadline is at or before now."""
        expired: list[T] = []
        seconds = self._seconds
        current = math.floor(now)
        while seconds and seconds[0] < current:
            second = heapq.heappop(seconds)
            self._queued.discard(second)
            bucket = self._buckets.pop(second, None)
            if bucket:
                expired.extend(bucket)
                for item in bucket:
                    del self._deadline[item]
        bucket = self._buckets.get(current)
        if bucket:
            ripe = [item for item in bucket if self._deadline[item] <= now]
            for item in ripe:
                self.cancel(item)
            expired.extend(ripe)
        return expired
