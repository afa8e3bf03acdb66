"""What every read back of the bus's log shares, whichever the bus: readers lent a
few at a time, and a budget of decoding time so the live stream never waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator

from roomcast_core.wire import WireError, decode_value
from roomcast_edge.domain.ports import Wanted
from roomcast_edge.domain.publication import Publication, make_publication
from roomcast_edge.metrics import EdgeMetrics

# Records decoded between two yields to the event loop: decoding is the costly part
# of a read back, and the live stream must not wait behind a whole chunk of it.
YIELD_EVERY = 16
# Share of the edge's time that decoding read-back records may take, all readers
# together. A process kept busy waits for the CPU whenever it wakes (the kernel
# favours processes that slept), which would delay every live push and reply; one
# that leaves most of its time free does not.
CPU_SHARE = 0.25
CPU_BURST = 0.02  # seconds of decoding allowed at once before the share applies


class CpuBudget:
    """A token bucket of decoding time, shared by an edge's readers."""

    def __init__(self, share: float = CPU_SHARE, burst: float = CPU_BURST) -> None:
        self._share = share
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    async def spend(self, seconds: float) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._share)
        self._stamp = now
        self._tokens -= seconds
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self._share)


def decode(
    partition: int, offset: int, value: bytes | None, timestamp: float, wanted: Wanted
) -> Publication | None:
    """The push of a wanted record; None for others and for what is not a roomcast message.

    Only wanted records pay for building a push: a recovery mostly skips records.
    `timestamp` is in seconds since the epoch.
    """
    try:
        message = decode_value(value)
        if not wanted(message.topic, message.type, message.room):
            return None
        return make_publication(message, partition, offset, timestamp)
    except WireError:
        return None


class Lending:
    """At most `readers` lent at once per edge, and at most `per_owner` of them to one
    token, so that no token can take them all; the others wait in arrival order.

    Both the lent and the waiting are gauged. A waiter whose token holds its share is
    passed over for the next one, and served when its token gives one back.
    """

    def __init__(self, readers: int, metrics: EdgeMetrics, per_owner: int | None = None) -> None:
        self._free = readers
        self._per_owner = per_owner if per_owner is not None else max(1, readers // 2)
        self._held: dict[str, int] = {}
        self._queue: deque[tuple[str, asyncio.Future[None]]] = deque()
        self._lent = 0
        metrics.archive_readers.set_function(lambda: self._lent)
        metrics.archive_waiting.set_function(lambda: len(self._queue))

    @contextlib.asynccontextmanager
    async def slot(self, owner: str = "") -> AsyncIterator[None]:
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (owner, granted)
        self._queue.append(entry)
        self._grant()
        try:
            await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self._give_back(owner)  # granted, then cancelled before it resumed
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(entry)
            raise
        try:
            yield
        finally:
            self._give_back(owner)

    def _give_back(self, owner: str) -> None:
        self._lent -= 1
        self._free += 1
        left = self._held[owner] - 1
        if left:
            self._held[owner] = left
        else:
            del self._held[owner]
        self._grant()

    def _grant(self) -> None:
        """Serve the waiters in order, passing over those whose token holds its share."""
        if not self._free:
            return
        kept: deque[tuple[str, asyncio.Future[None]]] = deque()
        queue = self._queue
        while queue and self._free:
            owner, granted = queue.popleft()
            if granted.done():
                continue
            if self._held.get(owner, 0) >= self._per_owner:
                kept.append((owner, granted))
                continue
            self._free -= 1
            self._lent += 1
            self._held[owner] = self._held.get(owner, 0) + 1
            granted.set_result(None)
        kept.extend(queue)
        self._queue = kept
