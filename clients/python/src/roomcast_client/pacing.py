"""Publishing at a set rate: message i is due at start + i / rate.

Due times are absolute, so a slow publish delays the ones behind it but not the rate
over the run: the schedule catches up instead of drifting. In-flight publishes are
bounded, so a stalled publisher slows the run down instead of piling up requests.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Schedule:
    rate: float  # messages per second, > 0
    duration: float  # seconds

    @property
    def count(self) -> int:
        return math.floor(self.rate * self.duration + 1e-9)

    def due(self, index: int) -> float:
        """Seconds after the start at which message `index` is sent."""
        return index / self.rate


@dataclass(slots=True)
class Tally:
    sent: int = 0
    failed: int = 0
    last_error: str = ""


async def run_schedule(
    schedule: Schedule,
    send: Callable[[int], Awaitable[object]],
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    max_in_flight: int = 64,
    tally: Tally | None = None,
) -> Tally:
    """Call send(i) for every message of the schedule on time; count what succeeded
    (into `tally` when given, so a caller can watch the counts as they grow)."""
    tally = tally if tally is not None else Tally()
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int) -> None:
        try:
            await send(index)
        except Exception as exc:  # counted, shown in the summary: the run goes on
            tally.failed += 1
            tally.last_error = str(exc) or type(exc).__name__
        else:
            tally.sent += 1
        finally:
            slots.release()

    start = clock()
    try:
        for index in range(schedule.count):
            wait = start + schedule.due(index) - clock()
            if wait > 0:
                await sleep(wait)
            await slots.acquire()
            task = asyncio.create_task(one(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return tally
