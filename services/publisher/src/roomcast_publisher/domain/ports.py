"""What publishing needs from the outside world, as typing.Protocol ports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from roomcast_core.wire import Message


class SinkUnavailable(Exception):
    """The record was not published, and this attempt will never publish it."""


class OutcomeUnknown(Exception):
    """The record reached a broker that never answered: it may or may not be published."""


class StoreUnavailable(Exception):
    """The idempotency store could not be asked or told."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A message the broker acknowledged."""

    message_id: str
    position: str
    receive_time: str
    replayed: bool = False  # True: an earlier publish of this message_id answers


@dataclass(frozen=True, slots=True)
class Claimed:
    """This caller holds the message_id and must publish it, then remember or release it."""

    token: str


@dataclass(frozen=True, slots=True)
class InProgress:
    """Another caller holds the message_id and has not finished yet."""


Claim = Claimed | Receipt | InProgress

# What became of one record: its "partition:offset" once the broker acknowledged it,
# SinkUnavailable when it was not (and will not be) published, or OutcomeUnknown when
# no client could tell (the broker died while holding it).
Delivery = str | SinkUnavailable | OutcomeUnknown


class RecordSink(Protocol):
    async def produce(self, messages: Sequence[Message]) -> list[Delivery]:
        """Hand the records to the producer in order, then wait for each one's fate.

        One Delivery per message, in order; never raises for a record's own failure.
        Concurrent calls share the producer's batches.
        """
        ...


class IdempotencyStore(Protocol):
    async def claim(self, message_ids: Sequence[str], hold_seconds: float) -> list[Claim]:
        """For each id: Claimed (now ours), the Receipt of an earlier publish, or InProgress."""
        ...

    async def lookup(self, message_id: str) -> Receipt | InProgress | None:
        """None when nobody holds the id (an earlier attempt failed or expired)."""
        ...

    async def settle(
        self,
        receipts: Sequence[Receipt],
        releases: Sequence[tuple[str, str]],
        window_seconds: int,
    ) -> None:
        """Remember the receipts for the window and let go of the (message_id, token)
        claims that did not publish, all in one go."""
        ...


class PublishObserver(Protocol):
    def produced(self, count: int, seconds: float) -> None:
        """count records acknowledged, seconds after they were handed to the producer."""
        ...

    def failed(self, reason: str) -> None: ...
