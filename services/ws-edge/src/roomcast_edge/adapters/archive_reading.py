"""What every read back of the bus's log shares, whichever the bus: readers lent a
few at a time, and a budget of decoding time so the live stream never waits on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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
    """At most `readers` lent at once per edge; the others wait, and both are gauged."""

    def __init__(self, readers: int, metrics: EdgeMetrics) -> None:
        self._slots = asyncio.Semaphore(readers)
        self._lent = 0
        self._waiting = 0
        metrics.archive_readers.set_function(lambda: self._lent)
        metrics.archive_waiting.set_function(lambda: self._waiting)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._lent += 1
        try:
            yield
        finally:
            self._lent -= 1
            self._slots.release()
