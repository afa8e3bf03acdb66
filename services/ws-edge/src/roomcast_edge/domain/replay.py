"""Replays: what a client missed, read from the replay index a chunk at a time.

A replay is a queue of jobs. Each job is a range of the stream (after a position
vector, up to another or, for the last job, up to wherever the stream is when the
job catches up) and a selector of what in it the client gets. Chunks are read as
the client's socket drains, so a replay of any size costs the edge a few chunks of
memory, and the client is never taken for slow while it reads.

The last job of a replay usually *follows* the stream: while a client replays, its
live pushes are not queued but read from the history by that job, so a replay and
the live stream meet with no gap and no duplicate however long the replay takes.
A follow job's selector is everything the session wants; when the session's rooms
or subscriptions change, the job is pinned to the stream's position at that moment
(`Replay.pin`) and a new follow job with the new selector takes over from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from roomcast_edge.domain.hub import ANY_TYPE, Subscription
from roomcast_edge.domain.publication import Publication
from roomcast_edge.domain.replay_index import BROADCAST, Address, Key, ReplayIndex


class ReplayBehind(Exception):
    """The history let go of publications a replay had not read yet: it cannot be exact."""


def addressed(rooms: frozenset[str], subs: frozenset[Subscription], p: Publication) -> bool:
    """Whether a session with these rooms and subscriptions receives `p` (the hub's rules)."""
    if p.room is not None and p.room not in rooms:
        return False
    if p.topic is not None:
        return (p.topic, ANY_TYPE) in subs or (p.type is not None and (p.topic, p.type) in subs)
    return True


@dataclass(frozen=True, slots=True)
class Selector:
    """What a session receives with `rooms`/`subs` and did not with `old_rooms`/`old_subs`.

    `fresh`: the session received nothing before (a connect, or a follow job).
    """

    rooms: frozenset[str]
    subs: frozenset[Subscription]
    old_rooms: frozenset[str] = frozenset()
    old_subs: frozenset[Subscription] = frozenset()
    fresh: bool = False

    @classmethod
    def everything(cls, rooms: frozenset[str], subs: frozenset[Subscription]) -> Selector:
        return cls(rooms, subs, fresh=True)

    def matches(self, p: Publication) -> bool:
        if not addressed(self.rooms, self.subs, p):
            return False
        return self.fresh or not addressed(self.old_rooms, self.old_subs, p)

    def keys(self) -> list[Key]:
        """The index lists that can hold a publication this selector matches (no two
        of them hold the same publication)."""
        if self.fresh:
            keys: list[Key] = []
            for room in sorted(self.rooms):
                keys.append((("room", room), None, None, True))
                keys.extend(_topic_keys(("room", room), self.subs))
            for topic in sorted({t for t, _ in self.subs}):
                keys.extend(_topic_keys(("topic", topic), self.subs, topic))
            keys.append((BROADCAST, None, None, True))
            return keys
        # What the old selection did not receive: a new room's messages, and those of
        # added subscriptions (not already held through a subscription to every type)
        # in the rooms and outside them. Broadcasts reached the session already.
        added = frozenset(
            (t, x) for t, x in self.subs - self.old_subs if (t, ANY_TYPE) not in self.old_subs
        )
        keys = []
        for room in sorted(self.rooms):
            if room not in self.old_rooms:
                keys.append((("room", room), None, None, True))
                keys.extend(_topic_keys(("room", room), self.subs))
            else:
                keys.extend(_topic_keys(("room", room), added))
        for topic in sorted({t for t, _ in added}):
            keys.extend(_topic_keys(("topic", topic), added, topic))
        return keys

    def narrowed(self, rooms: frozenset[str], subs: frozenset[Subscription]) -> Selector:
        """This selector without what the session no longer holds (`rooms`, `subs`)."""
        if self.rooms <= rooms and self.subs <= subs:
            return self
        return Selector(
            self.rooms & rooms, self.subs & subs, self.old_rooms, self.old_subs, self.fresh
        )


def _topic_keys(
    address: Address, subs: frozenset[Subscription], only: str | None = None
) -> list[Key]:
    """The lists of `address` holding the messages of `subs` (of topic `only`, if given)."""
    keys: list[Key] = []
    for topic in sorted({t for t, _ in subs if only is None or t == only}):
        if (topic, ANY_TYPE) in subs:
            keys.append((address, topic, None, True))
        else:
            keys.extend(
                (address, topic, x, False) for x in sorted(x for t, x in subs if t == topic)
            )
    return keys


class ReplayJob:
    """One range of the stream for one selector, read in chunks."""

    __slots__ = ("_after", "_epochs", "_keys", "_selector", "_until")

    def __init__(
        self,
        index: ReplayIndex,
        selector: Selector,
        since: Mapping[int, int],
        until: Mapping[int, int] | None,
        oldest: Mapping[int, int] | None = None,
    ) -> None:
        """`oldest`: per partition, the oldest offset the history holds (see
        history_view); a job starting before it replays what is still held."""
        self._selector = selector
        self._keys = selector.keys()
        # Per partition, the last offset handled.
        oldest = oldest or {}
        self._after = {
            p: max(since.get(p, -1), oldest.get(p, 0) - 1, index.dropped(p))
            for p in index.partitions
        }
        for partition, offset in since.items():
            self._after.setdefault(partition, offset)
        self._until = dict(until) if until is not None else None
        self._epochs = {p: index.epoch(p) for p in index.partitions}

    @property
    def follows(self) -> bool:
        return self._until is None

    @property
    def waiting(self) -> bool:
        """Nothing to send until something outside the event loop's turn arrives."""
        return False

    def resume_after(self, positions: Mapping[int, int]) -> None:
        """What lies up to `positions` was sent by a job before this one: go on after it."""
        after = self._after
        for partition, offset in positions.items():
            if offset > after.get(partition, -1):
                after[partition] = offset

    def pin(self, positions: Mapping[int, int]) -> None:
        """Stop at `positions` (the stream's end now) instead of following the stream."""
        if self._until is None:
            self._until = dict(positions)

    def narrow(self, rooms: frozenset[str], subs: frozenset[Subscription]) -> None:
        """The session left rooms or subscriptions: send nothing more of them."""
        selector = self._selector.narrowed(rooms, subs)
        if selector is not self._selector:
            self._selector = selector
            self._keys = selector.keys()

    @property
    def exhausted(self) -> bool:
        """A pinned job that has read all its range (it may still be in a queue)."""
        until = self._until
        if until is None:
            return False
        after = self._after
        return all(after.get(p, -1) >= offset for p, offset in until.items())

    def behind(self, index: ReplayIndex) -> bool:
        """Whether the index let go of publications this job had still to read."""
        until = self._until
        for partition in index.partitions:
            if self._epochs.get(partition, index.epoch(partition)) != index.epoch(partition):
                continue  # started over: `read` rewinds the job there
            seen = self._after.get(partition, -1)
            if until is not None and seen >= until.get(partition, -1):
                continue
            if index.dropped(partition) > seen:
                return True
        return False

    def count(self, index: ReplayIndex) -> int:
        """At most how many publications this job replays (those it would read now)."""
        total = 0
        until = self._until
        for partition in index.partitions:
            upto = None if until is None else until.get(partition, -1)
            total += index.count(partition, self._keys, self._after.get(partition, -1), upto)
        return total

    def read(
        self, index: ReplayIndex, frames: list[bytes], max_bytes: int, max_scan: int
    ) -> tuple[int, int, bool]:
        """Append matching frames until a budget is spent: (bytes, scanned, done)."""
        size = scanned = 0
        selector, keys, after, until = self._selector, self._keys, self._after, self._until
        for partition in index.partitions:
            seen = after.get(partition, -1)
            epoch = index.epoch(partition)
            if self._epochs.get(partition, epoch) != epoch:
                # The partition started over: its old offsets say nothing of the new log,
                # whose records this job's range never contained.
                self._epochs[partition] = epoch
                seen = after[partition] = -1 if until is None else 2**63
            self._epochs.setdefault(partition, epoch)
            upto = None if until is None else until.get(partition, -1)
            if upto is not None and seen >= upto:
                continue
            if index.dropped(partition) > seen:
                raise ReplayBehind(partition)
            for publication in index.read(partition, keys, seen):
                offset = publication.offset
                if upto is not None and offset > upto:
                    break
                after[partition] = offset
                scanned += 1
                if selector.matches(publication):
                    frames.append(publication.frame)
                    size += len(publication.frame)
                if size >= max_bytes or scanned >= max_scan:
                    return size, scanned, False
        return size, scanned, True


class Replay:
    """A session's replay jobs, oldest first."""

    __slots__ = ("jobs",)

    def __init__(self, jobs: list[ReplayJob]) -> None:
        self.jobs = jobs

    @property
    def follows(self) -> bool:
        return bool(self.jobs) and self.jobs[-1].follows

    @property
    def waiting(self) -> bool:
        """The next job waits for records from outside (it is woken when they come)."""
        return bool(self.jobs) and self.jobs[0].waiting

    def pin(self, positions: Mapping[int, int]) -> None:
        if self.jobs:
            last = self.jobs[-1]
            last.pin(positions)
            if last.exhausted:
                self.jobs.pop()  # it had nothing left to read: requests in a burst add none

    def narrow(self, rooms: frozenset[str], subs: frozenset[Subscription]) -> None:
        """Nothing of a room or subscription the session no longer holds is sent."""
        for job in self.jobs:
            job.narrow(rooms, subs)

    def behind(self, index: ReplayIndex) -> bool:
        return any(job.behind(index) for job in self.jobs)

    def extend(self, jobs: list[ReplayJob]) -> None:
        self.jobs.extend(jobs)

    def next_chunk(self, index: ReplayIndex, max_bytes: int, max_scan: int) -> tuple[bytes, bool]:
        """The next frames to send, joined, and whether the replay is over.

        ReplayBehind when the history let go of what was still to be read.
        """
        frames: list[bytes] = []
        jobs = self.jobs
        while jobs:
            size, scanned, done = jobs[0].read(index, frames, max_bytes, max_scan)
            if not done:
                return b"".join(frames), False
            jobs.pop(0)
            max_bytes -= size
            max_scan -= scanned
            if max_bytes <= 0 or max_scan <= 0:
                return b"".join(frames), not jobs
        return b"".join(frames), True
