"""Latency bookkeeping for the load mode."""

from __future__ import annotations

import bisect
from datetime import datetime

from roomcast_client.client import Push


def receive_latency(push: Push) -> float | None:
    """Seconds from the publisher receiving the message to this client receiving it."""
    try:
        sent = datetime.fromisoformat(push.receive_time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return max(push.received_at - sent, 0.0)


class LatencyStats:
    def __init__(self) -> None:
        self._sorted: list[float] = []

    def add(self, value: float) -> None:
        bisect.insort(self._sorted, value)

    def __len__(self) -> int:
        return len(self._sorted)

    def percentile(self, p: float) -> float:
        if not self._sorted:
            return 0.0
        index = min(len(self._sorted) - 1, max(0, round(p / 100 * len(self._sorted)) - 1))
        return self._sorted[index]
