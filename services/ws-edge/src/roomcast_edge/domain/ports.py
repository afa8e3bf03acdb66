"""Ports: what the edge needs from the outside world, as typing.Protocols."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from roomcast_edge.domain.publication import Publication


class PublicationSink(Protocol):
    """Where the stream source hands what it reads (the edge node)."""

    def start_partition(self, partition: int, first_offset: int) -> None:
        """Reading `partition` begins at `first_offset`."""

    def reset_partition(self, partition: int, first_offset: int) -> None:
        """Kafka's offsets of `partition` went backwards: reading starts over at
        `first_offset`, and offsets read before name other records."""

    def gap(self, partition: int, first_offset: int) -> None:
        """The offsets of `partition` jumped to `first_offset`: the records between
        were removed from the bus (trimmed) before this edge read them."""

    def publish(self, publication: Publication, receive_epoch: float | None, live: bool) -> int:
        """Remember it; when live, deliver it. Returns the number of recipients."""

    def go_live(self) -> None:
        """The history is filled up to the stream's end seen at start: live from now on."""

    def skip(self, partition: int, offset: int) -> None:
        """A record that is not a roomcast message was consumed and skipped."""


class Presence(Protocol):
    """Token state shared through Redis: HTTP heartbeats and revocations."""

    async def alive_among(self, jtis: Sequence[str]) -> set[str]: ...

    async def revoked_among(self, jtis: Sequence[str]) -> set[str]: ...

    async def is_revoked(self, jti: str) -> bool: ...


class ArchiveGone(Exception):
    """The bus no longer holds a record that was asked for (retention, truncation)."""

    def __init__(self, partition: int, first: int) -> None:
        super().__init__(f"partition {partition} holds offsets from {first} on only")
        self.partition = partition
        self.first = first


@dataclass(frozen=True, slots=True)
class ArchiveChunk:
    """Records read back in offset order: those decoded, and the last offset read
    (decodable or not); `last` equals the `after` asked for when nothing came."""

    publications: list[Publication]
    last: int


# (topic, type, room) of a record -> whether the reader wants its push built at all.
Wanted = Callable[[str | None, str | None, str | None], bool]


class ArchiveReader(Protocol):
    """One reader of the bus's log, held by one history read or recovery at a time."""

    async def read(
        self, partition: int, after: int, upto: int, max_records: int, wanted: Wanted
    ) -> ArchiveChunk:
        """The wanted records of `partition` in (after, upto], of at most `max_records`.

        ArchiveGone when the bus no longer holds `after + 1`.
        """


class StreamArchive(Protocol):
    """The bus's own log, read back for what the in-memory history no longer holds."""

    async def log_start(self, partitions: Sequence[int]) -> dict[int, int]:
        """Per partition, the first offset the bus still holds."""

    def known_log_start(self) -> dict[int, int] | None:
        """What `log_start` last answered (None: never asked yet)."""

    async def offsets_at(self, timestamp_ms: int, partitions: Sequence[int]) -> dict[int, int]:
        """Per partition, the first offset at or after the time (the end when none)."""

    def reader(self, purpose: str, owner: str = "") -> AbstractAsyncContextManager[ArchiveReader]:
        """A reader of its own; waits while the edge's readers are all in use, or while
        `owner` (a token) holds its share of them."""
