"""Keep aiokafka's reconnect chatter from flooding the log while a broker is away.

aiokafka logs every failed connection and metadata attempt at ERROR, and its sender
retries in a tight loop while a partition has no leader: thousands of identical
lines a second. The services report their link state themselves ("kafka link
down/up", /readyz), so one line per distinct message every few seconds is plenty.
The filter sits on the log handler, so it covers every aiokafka logger, present
and future, in every service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

CHATTY_PREFIXES = ("aiokafka",)


class RepeatFilter(logging.Filter):
    """Lets a given (logger, template) of a chatty library through once per `every` seconds."""

    def __init__(
        self,
        every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        prefixes: tuple[str, ...] = CHATTY_PREFIXES,
    ) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._every = every
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._prefixes):
            return True
        key = (record.name, str(record.msg)[:80])
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._every:
            return False
        if len(self._last) > 1000:  # templates are few; this only guards against surprises
            self._last.clear()
        self._last[key] = now
        return True
