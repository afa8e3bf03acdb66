"""Ports: what the edge needs from the outside world, as typing.Protocols."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from roomcast_edge.domain.publication import Publication


class PublicationSink(Protocol):
    """Where the stream source hands what it reads (the edge node)."""

    def start_partition(self, partition: int, first_offset: int) -> None:
        """Reading `partition` begins at `first_offset`."""

    def reset_partition(self, partition: int, first_offset: int) -> None:
        """Kafka's offsets of `partition` went backwards: reading starts over at
        `first_offset`, and offsets read before name other records."""

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
