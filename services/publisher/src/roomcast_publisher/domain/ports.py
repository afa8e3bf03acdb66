"""What publishing needs from the outside world, as typing.Protocol ports."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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

# A delivery resolves to the record's "partition:offset" once the broker acknowledged,
# raises SinkUnavailable when the record was not (and will not be) published, or
# OutcomeUnknown when no client could tell (the broker died while holding it).
Delivery = Coroutine[Any, Any, str]


class RecordSink(Protocol):
    async def enqueue(self, message: Message) -> Delivery:
        """Hand the record to the producer in call order; SinkUnavailable if it cannot take it."""
        ...


class IdempotencyStore(Protocol):
    async def claim(self, message_ids: Sequence[str], hold_seconds: float) -> list[Claim]:
        """For each id: Claimed (now ours), the Receipt of an earlier publish, or InProgress."""
        ...

    async def lookup(self, message_id: str) -> Receipt | InProgress | None:
        """None when nobody holds the id (an earlier attempt failed or expired)."""
        ...

    async def remember(self, receipt: Receipt, window_seconds: int) -> None: ...

    async def release(self, message_id: str, token: str) -> None: ...


class PublishObserver(Protocol):
    def produced(self, seconds: float) -> None: ...

    def failed(self, reason: str) -> None: ...
