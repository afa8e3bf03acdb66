"""The operator's live tail: which bus records an operator sees, and how many.

A tail filters by room, topic and type, then samples to at most `rate` events per
second (a token bucket: a burst of `rate`, then `rate` per second); the next event
it sends after dropping some carries their number as `skipped`. A record is decoded
only when its filter needs it or it is sent: a tail costs little per record it drops.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from roomcast_core.wire import Message

DEFAULT_RATE = 20
MAX_RATE = 200
# Bytes of a payload's JSON a tail shows; longer ones are cut (the event says so).
MAX_PAYLOAD_BYTES = 2048


@dataclass(frozen=True, slots=True)
class BusRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class BusReader(Protocol):
    """The bus read directly, from its end, on every partition."""

    async def follow(
        self, deliver: Callable[[list[BusRecord]], None], ready: Callable[[], None]
    ) -> None:
        """Until cancelled: `ready()` once reading from the end, then every batch read."""

    async def recent(self, per_partition: int, timeout: float) -> list[BusRecord]:
        """Up to the last `per_partition` records of each partition."""


@dataclass(frozen=True, slots=True)
class TailFilter:
    room: str | None = None
    topic: str | None = None
    type: str | None = None

    def may_match(self, key: bytes | None) -> bool:
        """False when the record key alone rules it out: a room's messages are keyed by it."""
        return self.room is None or key == self.room.encode()

    @property
    def needs_message(self) -> bool:
        return self.room is not None or self.topic is not None or self.type is not None

    def matches(self, message: Message) -> bool:
        return (
            (self.room is None or message.room == self.room)
            and (self.topic is None or message.topic == self.topic)
            and (self.type is None or message.type == self.type)
        )


class Sampler:
    """At most `rate` per second, with a burst of `rate`; counts what it turned away."""

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self._at = now
        self.skipped = 0

    def take(self, now: float) -> bool:
        self._tokens = min(float(self.rate), self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.skipped += 1
        return False

    def take_skipped(self) -> int:
        skipped, self.skipped = self.skipped, 0
        return skipped


def push_event(message: Message, partition: int, offset: int) -> dict[str, Any]:
    """The push as an edge sends it, with a payload over MAX_PAYLOAD_BYTES cut."""
    event: dict[str, Any] = {}
    if message.topic is not None:
        event["topic"] = message.topic
    if message.type is not None:
        event["type"] = message.type
    if message.room is not None:
        event["room"] = message.room
    payload = message.payload
    try:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        text = ""
    encoded = text.encode()
    if len(encoded) > MAX_PAYLOAD_BYTES:
        event["payload"] = encoded[:MAX_PAYLOAD_BYTES].decode(errors="ignore")
        event["payload_truncated"] = True
    else:
        event["payload"] = payload
    event["meta"] = {
        "receive_time": message.receive_time,
        "message_id": message.message_id,
        "position": f"{partition}:{offset}",
    }
    return event


Decode = Callable[[BusRecord], Message | None]


class Tail:
    """One operator's view of the stream: filter, then sample."""

    def __init__(self, tail_filter: TailFilter, rate: int, now: float) -> None:
        self.filter = tail_filter
        self.sampler = Sampler(rate, now)

    def offer(self, record: BusRecord, now: float, decode: Decode) -> dict[str, Any] | None:
        """The event to send for record, or None (not wanted, or sampled away)."""
        if not self.filter.may_match(record.key):
            return None
        message = None
        if self.filter.needs_message:
            message = decode(record)
            if message is None or not self.filter.matches(message):
                return None
        if not self.sampler.take(now):
            return None
        if message is None:
            message = decode(record)
            if message is None:
                return None
        event = push_event(message, record.partition, record.offset)
        skipped = self.sampler.take_skipped()
        if skipped:
            event["skipped"] = skipped
        return event

    def lost(self, event: dict[str, Any]) -> None:
        """An event that could not be queued counts as skipped, with those it carried."""
        self.sampler.skipped += 1 + int(event.get("skipped", 0))
