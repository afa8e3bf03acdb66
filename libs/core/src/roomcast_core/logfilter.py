"""Keep aiokafka's reconnect chatter from flooding the log while a broker is away.

aiokafka logs every failed connection and metadata attempt at ERROR, and its sender
retries in a tight loop while a partition has no leader: thousands of identical
lines a second. The publisher reports the link state itself ("kafka link down/up"),
so one line per distinct message every few seconds is plenty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

KAFKA_CLIENT_LOGGERS = (
    "aiokafka",
    "aiokafka.client",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.producer.sender",
    "aiokafka.producer.producer",
    "aiokafka.admin.client",
)


class RepeatFilter(logging.Filter):
    """Lets a given (logger, template) through at most once per `every` seconds."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every = every
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:80])
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._every:
            return False
        if len(self._last) > 1000:  # templates are few; this only guards against surprises
            self._last.clear()
        self._last[key] = now
        return True


def quiet_repeats(names: Iterable[str], every: float = 10.0) -> None:
    """Install one RepeatFilter on each named logger (filters do not inherit)."""
    shared = RepeatFilter(every)
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(shared)
