"""aiokafka's reconnect chatter is cut to one line per message template per interval."""

from __future__ import annotations

import logging

from roomcast_core.logfilter import RepeatFilter


def record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_repeats_are_dropped_until_the_interval_passes() -> None:
    now = [100.0]
    quiet = RepeatFilter(every=10, clock=lambda: now[0])
    template = "Unable connect to node with id %s: %s"
    assert quiet.filter(record("aiokafka.client", template, 1, "refused"))
    assert not quiet.filter(record("aiokafka.client", template, 1, "refused again"))
    assert quiet.filter(record("aiokafka.client", "Unable to update metadata from %s", [1]))
    assert quiet.filter(record("aiokafka.conn", template, 1, "refused"))  # another logger
    now[0] += 10.5
    assert quiet.filter(record("aiokafka.client", template, 1, "refused"))


def test_our_own_lines_are_never_dropped() -> None:
    quiet = RepeatFilter(every=10, clock=lambda: 0.0)
    for _ in range(3):
        assert quiet.filter(record("roomcast_publisher.app", "kafka link down"))
