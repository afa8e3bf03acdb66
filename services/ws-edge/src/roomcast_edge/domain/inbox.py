"""A receiving edge's side of shared ingest: routed messages into the history, whole.

The rule kept here: a partition's position in the history (the offset last consumed)
promises that every message up to it, of every channel this edge holds, is in the
history. Routed messages and the reading edges' watermarks move it on.

A channel taken up (a room's first local connection) or taken up again (the Redis
link dropped) has a gap: what was routed on it before its subscription took effect.
Until the gap is filled from the bus itself, the partition's position stays where it
was and what arrives meanwhile waits in the partition's queue; then the fill and the
queue go in, in offset order, each offset once.

Where a gap ends: a subscription's confirmation and every routed message come on one
connection in the order Redis handled them, and a reading edge sends a partition's
messages in offset order and its watermark after them. So the first message or
watermark of a partition received once all its gap's channels are confirmed names an
offset past which nothing of them can have been missed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from roomcast_edge.domain.ports import PublicationSink
from roomcast_edge.domain.replay_index import BROADCAST, Address, address_of
from roomcast_edge.domain.routing import Routed, Watermark


@dataclass(slots=True)
class _Channel:
    confirmed: bool = False
    # Per partition, the offset after which every message of the channel is (or, once
    # its gap is filled, will be) in the history.
    after: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Fill:
    start: int  # the partition's position when the gap opened
    channels: set[Address] = field(default_factory=set)
    read: set[Address] = field(default_factory=set)  # read from the bus up to `target`
    target: int | None = None
    reading: bool = False
    generation: int = 0  # a dropped link makes reads started before it incomplete
    got: dict[int, Routed] = field(default_factory=dict)


@dataclass(slots=True)
class _Partition:
    queue: dict[int, Routed] = field(default_factory=dict)
    mark: int = -1  # the highest watermark seen while the gap is open
    fill: _Fill | None = None


@dataclass(frozen=True, slots=True)
class FillRead:
    """Read `keys`' messages of `partition` in (after, upto] from the bus."""

    partition: int
    after: int
    upto: int
    keys: frozenset[Address]
    generation: int


class Inbox:
    def __init__(self, sink: PublicationSink, positions: Callable[[], dict[int, int]]) -> None:
        self._sink = sink
        self._positions = positions
        self._channels: dict[Address, _Channel] = {BROADCAST: _Channel()}
        self._parts: dict[int, _Partition] = {}
        self._count: int | None = None  # the topic's partitions, from the watermarks
        self.live = False
        # Called when a fill can be read (the reader waits for it).
        self.on_fill: Callable[[], None] | None = None

    # ---- channels ------------------------------------------------------------

    @property
    def held(self) -> list[Address]:
        return list(self._channels)

    def holds(self, key: Address) -> bool:
        return key in self._channels

    def hold(self, key: Address) -> None:
        """Take a channel up (its subscription is on its way): its gap opens now."""
        if key in self._channels:
            return
        positions = self._positions()
        channel = self._channels[key] = _Channel()
        for partition in self._parts:
            channel.after[partition] = self._open_gap(partition, [key], positions)

    def release(self, key: Address) -> None:
        """The channel was let go: nothing of it is promised any more."""
        if key == BROADCAST or self._channels.pop(key, None) is None:
            return
        for partition, part in self._parts.items():
            if part.fill is not None:
                part.fill.channels.discard(key)
                part.fill.read.discard(key)
                self._settle(partition)

    def confirmed(self, key: Address) -> None:
        channel = self._channels.get(key)
        if channel is not None:
            channel.confirmed = True

    def lost(self) -> None:
        """The link dropped: every channel has a gap from the partition's position on."""
        positions = self._positions()
        for channel in self._channels.values():
            channel.confirmed = False
        for partition in self._parts:
            self._open_gap(partition, list(self._channels), positions)
            fill = self._parts[partition].fill
            assert fill is not None
            fill.read.clear()
            fill.generation += 1

    def covered_after(self, keys: Iterable[Address]) -> dict[int, int]:
        """Per partition, the offset after which the history holds every message of
        these channels (a channel not held is covered from the position on)."""
        positions = self._positions()
        covered: dict[int, int] = {}
        for key in keys:
            channel = self._channels.get(key)
            after = positions if channel is None else channel.after
            for partition, offset in after.items():
                if offset > covered.get(partition, -2):
                    covered[partition] = offset
        return covered

    # ---- routed input ----------------------------------------------------------

    def receive(self, routed: Routed) -> None:
        publication = routed.publication
        part = self._parts.get(publication.partition)
        if part is None:
            return  # before the partition's first watermark: not promised yet
        fill = part.fill
        if fill is None:
            self._sink.publish(publication, routed.receive_epoch, True)
            return
        if publication.offset > fill.start:
            part.queue[publication.offset] = routed
        self._seen(publication.partition, publication.offset)

    def watermark(self, mark: Watermark) -> None:
        if self._count is None or mark.partitions > self._count:
            self._count = mark.partitions
        for partition, offset in mark.routed.items():
            part = self._parts.get(partition)
            if part is None:
                self._start(partition, offset)
            elif part.fill is None:
                self._sink.skip(partition, offset)
            else:
                part.mark = max(part.mark, offset)
                self._seen(partition, offset)
        count = self._count
        if not self.live and count is not None and all(p in self._parts for p in range(count)):
            self.live = True
            self._sink.go_live()

    # ---- filling from the bus ----------------------------------------------------

    def next_read(self) -> FillRead | None:
        """A gap ready to be read from the bus (marked as being read), if any."""
        for partition, part in self._parts.items():
            fill = part.fill
            if fill is None or fill.reading or fill.target is None:
                continue
            keys = frozenset(fill.channels - fill.read)
            if keys:
                fill.reading = True
                return FillRead(partition, fill.start, fill.target, keys, fill.generation)
        return None

    def filled(self, read: FillRead, routed: list[Routed]) -> None:
        """What the bus holds of `read`'s channels in its range."""
        part = self._parts.get(read.partition)
        fill = part.fill if part is not None else None
        if fill is None:
            return
        fill.reading = False
        for item in routed:
            if address_of(item.publication) in read.keys:
                fill.got[item.publication.offset] = item
        if read.generation == fill.generation:
            fill.read |= read.keys
        self._settle(read.partition)

    def fill_failed(self, read: FillRead) -> None:
        """The read failed: it is offered again."""
        part = self._parts.get(read.partition)
        if part is not None and part.fill is not None:
            part.fill.reading = False
            self._wake()

    @property
    def filling(self) -> int:
        """Partitions whose position waits for a gap to be filled."""
        return sum(1 for part in self._parts.values() if part.fill is not None)

    # ---- inside ------------------------------------------------------------------

    def _start(self, partition: int, routed: int) -> None:
        """The partition's first watermark: promised from there on."""
        self._sink.start_partition(partition, routed + 1)
        self._parts[partition] = _Partition()
        unconfirmed = [k for k, c in self._channels.items() if not c.confirmed]
        for channel in self._channels.values():
            channel.after[partition] = routed
        if unconfirmed:
            self._open_gap(partition, unconfirmed, {partition: routed})

    def _open_gap(self, partition: int, keys: list[Address], positions: dict[int, int]) -> int:
        part = self._parts[partition]
        if part.fill is None:
            part.fill = _Fill(start=positions.get(partition, -1))
            part.mark = part.fill.start
        part.fill.channels.update(keys)
        part.fill.target = None  # must come after the new channels' confirmation
        return part.fill.start

    def _seen(self, partition: int, offset: int) -> None:
        """A message or watermark of the partition arrived while its gap is open."""
        fill = self._parts[partition].fill
        assert fill is not None
        if fill.target is None and all(
            self._channels[k].confirmed for k in fill.channels if k in self._channels
        ):
            fill.target = max(offset, fill.start)
            self._settle(partition)

    def _settle(self, partition: int) -> None:
        """Close the gap once everything it needs is read; else offer what to read."""
        part = self._parts[partition]
        fill = part.fill
        if fill is None or fill.reading:
            return
        if fill.channels and (fill.target is None or not fill.channels <= fill.read):
            if fill.target is not None:
                self._wake()
            return
        part.fill = None
        items = {**fill.got, **part.queue}
        part.queue = {}
        publish = self._sink.publish
        for offset in sorted(items):
            item = items[offset]
            publish(item.publication, item.receive_epoch, True)
        if part.mark > fill.start:
            self._sink.skip(partition, part.mark)

    def _wake(self) -> None:
        if self.on_fill is not None:
            self.on_fill()
