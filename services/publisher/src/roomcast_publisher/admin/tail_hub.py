"""Open tails share one reader of the bus, which runs only while a tail is open.

The first tail starts the reader, the last one to close stops it: with nobody
watching, the tail costs the bus nothing. Tails are bounded in number, and each
one's queue in length (what does not fit is counted as skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roomcast_core.wire import Message, WireError, decode_value
from roomcast_publisher.domain.tail import BusReader, BusRecord, Tail

# Events one tail holds for its client: a few seconds at the highest rate.
QUEUE_EVENTS = 1000


@dataclass(eq=False)
class Watch:
    tail: Tail
    events: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_EVENTS)
    )
    # The hub is shutting down: the tail's stream ends.
    ended: bool = False


def _decoder() -> Callable[[BusRecord], Message | None]:
    """Decodes each record once however many tails look at it (one batch's memo)."""
    memo: dict[int, Message | None] = {}

    def decode(record: BusRecord) -> Message | None:
        key = id(record)
        if key not in memo:
            try:
                memo[key] = decode_value(record.value)
            except WireError:
                memo[key] = None
        return memo[key]

    return decode


class TailHub:
    def __init__(self, reader: Callable[[], BusReader], max_tails: int) -> None:
        self._reader = reader
        self.max_tails = max_tails
        self._watches: set[Watch] = set()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self._closed = False

    @property
    def open_tails(self) -> int:
        return len(self._watches)

    @property
    def reading(self) -> bool:
        return self._task is not None

    def open(self, tail: Tail) -> Watch | None:
        """A new watch, or None when max_tails are open already (or shutting down)."""
        if self._closed or len(self._watches) >= self.max_tails:
            return None
        watch = Watch(tail)
        self._watches.add(watch)
        if self._task is None:
            self.ready.clear()
            reader = self._reader()
            self._task = asyncio.create_task(
                reader.follow(self._deliver, self.ready.set), name="admin-tail-reader"
            )
        return watch

    async def close(self, watch: Watch) -> None:
        self._watches.discard(watch)
        if not self._watches and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def shutdown(self) -> None:
        """Every open tail ends, the reader stops."""
        self._closed = True
        for watch in list(self._watches):
            watch.ended = True
            await self.close(watch)

    def _deliver(self, records: list[BusRecord]) -> None:
        now = time.monotonic()
        decode = _decoder()
        for watch in self._watches:
            tail, events = watch.tail, watch.events
            for record in records:
                event = tail.offer(record, now, decode)
                if event is None:
                    continue
                try:
                    events.put_nowait(event)
                except asyncio.QueueFull:
                    tail.lost(event)
