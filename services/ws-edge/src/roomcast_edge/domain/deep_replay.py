"""A replay that starts before the in-memory history: its older part read from the bus.

A `DeepJob` wraps the replay job the history would run and goes first: a reader
outside the domain (deep_recovery) reads the bus's log partition by partition from
the client's vector up to where the history takes over, and `feed`s what it read;
the job keeps only what its selector matches, a bounded buffer that the fan-out
sends as the client's socket drains. Where the history takes over moves as it
evicts, so it is asked again (`pending`) on every step; once the bus part has
caught up with it, in the same synchronous step the wrapped job is told to go on
after the bus part's last offsets and the replay carries on from memory, following
the stream. That hand-over with no await in between is what keeps it exact.

A rewind that the history cannot fill starts as a search (`rewinding`): the reader
looks for the latest matching records before the history, then `begin` fixes where
the replay starts, from them and the history's own, in one synchronous step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence

from roomcast_edge.domain.hub import Subscription
from roomcast_edge.domain.publication import Publication
from roomcast_edge.domain.replay import ReplayBehind, ReplayJob, Selector
from roomcast_edge.domain.replay_index import ReplayIndex

# A matching record found before the history: (time it entered the stream, offset).
Found = tuple[float, int]
# The vector a rewind starts after, given such records per partition.
Start = Callable[[Mapping[int, Sequence[Found]]], dict[int, int]]


class DeepJob(ReplayJob):
    __slots__ = (
        "_buffer",
        "_cursor",
        "_inner",
        "_pinned",
        "_start",
        "_targets",
        "buffered",
        "failed",
        "handed",
        "on_drained",
        "rewinding",
    )

    def __init__(
        self,
        index: ReplayIndex,
        selector: Selector,
        since: Mapping[int, int],
        inner: ReplayJob,
        targets: Callable[[], dict[int, int]],
        rewind: int = 0,
        start: Start | None = None,
    ) -> None:
        """`targets()`: per partition, the offset after which the history can take over.

        With `rewind` N, `since` is ignored: where the replay starts is searched for
        (the latest N matching records), and nothing is sent until `begin`, which
        asks `start` for the vector to start after.
        """
        super().__init__(index, selector, {}, {})
        self._inner = inner
        self._targets = targets
        self.rewinding = rewind
        self._start = start
        first = targets() if rewind else since
        self._cursor = {p: first.get(p, -1) for p in targets()}
        self._buffer: deque[Publication] = deque()
        self.buffered = 0
        self.handed = False
        self.failed = False
        # Where the replay was pinned (the session's selection changed): never read past.
        self._pinned: dict[int, int] | None = None
        # Called when the buffer was drained or the job wants more: wakes the reader.
        self.on_drained: Callable[[], None] | None = None

    # ---- for the reader -----------------------------------------------------

    def bounds(self) -> dict[int, int]:
        """Per partition, the last offset the bus part may read (the history has the rest)."""
        targets, pinned = self._targets(), self._pinned
        if pinned is not None:
            for partition, target in targets.items():
                targets[partition] = min(target, pinned.get(partition, -1))
        return targets

    def pending(self) -> tuple[int, int, int] | None:
        """(partition, after, upto) still to read from the bus; None: caught up."""
        if self.handed or self.failed or self.rewinding:
            return None
        cursor = self._cursor
        for partition, target in sorted(self.bounds().items()):
            after = cursor.setdefault(partition, -1)
            if after < target:
                return partition, after, target
        return None

    def matches(self, publication: Publication) -> bool:
        return self._selector.matches(publication)

    @property
    def selector(self) -> Selector:
        return self._selector

    def begin(self, older: Mapping[int, Sequence[Found]]) -> None:
        """The rewind's search is over, `older` are the matching records it found
        before the history: the replay starts after the vector `start` makes of them
        and of the history's own, on the bus or in the history."""
        assert self._start is not None
        since = self._start(older)
        for partition, offset in since.items():
            self._cursor[partition] = offset
        self._inner.resume_after(since)
        self.rewinding = 0
        self._wake()

    def wants(self, topic: str | None, type_: str | None, room: str | None) -> bool:
        """Whether a record so addressed can match (checked before its push is built)."""
        return self._selector.matches(Publication(0, 0, topic, type_, room, b"", 0.0))

    def feed(self, partition: int, publications: list[Publication], last: int) -> None:
        """Records of `partition` up to `last` were read from the bus (decodable or not)."""
        matches = self._selector.matches
        buffer = self._buffer
        for publication in publications:
            if matches(publication):
                buffer.append(publication)
                self.buffered += len(publication.frame)
        if last > self._cursor.get(partition, -1):
            self._cursor[partition] = last

    def fail(self) -> None:
        """The bus no longer holds what was to be read: the replay cannot be exact."""
        self.failed = True

    # ---- ReplayJob ------------------------------------------------------------

    @property
    def follows(self) -> bool:
        return self._inner.follows

    @property
    def waiting(self) -> bool:
        if self.handed:
            return self._inner.waiting
        if self.rewinding:
            return not self.failed
        return not self._buffer and not self.failed and self.pending() is not None

    def pin(self, positions: Mapping[int, int]) -> None:
        if self._pinned is None:
            self._pinned = dict(positions)
        self._inner.pin(positions)

    def narrow(self, rooms: frozenset[str], subs: frozenset[Subscription]) -> None:
        super().narrow(rooms, subs)
        self._inner.narrow(rooms, subs)
        matches = self._selector.matches
        kept = deque(p for p in self._buffer if matches(p))
        self.buffered = sum(len(p.frame) for p in kept)
        self._buffer = kept

    @property
    def exhausted(self) -> bool:
        return self.handed and self._inner.exhausted

    def behind(self, index: ReplayIndex) -> bool:
        # While the bus part runs, the history moving on is what it follows.
        return self.handed and self._inner.behind(index)

    def count(self, index: ReplayIndex) -> int:
        """Records of the stream still to read from the bus, plus the history's part."""
        gap = sum(max(0, t - self._cursor.get(p, -1)) for p, t in self._targets().items())
        return gap + self._inner.count(index)

    def read(
        self, index: ReplayIndex, frames: list[bytes], max_bytes: int, max_scan: int
    ) -> tuple[int, int, bool]:
        if self.handed:
            return self._inner.read(index, frames, max_bytes, max_scan)
        if self.failed:
            raise ReplayBehind(-1)
        if self.rewinding:
            return 0, 0, False  # where to start is not known yet
        size = 0
        buffer = self._buffer
        while buffer and size < max_bytes:
            frame = buffer.popleft().frame
            frames.append(frame)
            size += len(frame)
        self.buffered -= size
        if not buffer and self.pending() is None:
            # Caught up with where the history takes over: hand over in this step.
            self._inner.resume_after(self._cursor)
            self.handed = True
            self._wake()
            inner_size, scanned, done = self._inner.read(index, frames, max_bytes - size, max_scan)
            return size + inner_size, scanned, done
        self._wake()
        return size, 0, False

    def _wake(self) -> None:
        if self.on_drained is not None:
            self.on_drained()
