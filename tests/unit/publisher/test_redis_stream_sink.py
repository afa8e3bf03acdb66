"""The Redis Streams sink fits the publisher's port and knows where WAITAOF exists."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from roomcast_core.settings import load_settings
from roomcast_core.wire import Message
from roomcast_publisher.adapters.redis_stream_sink import RedisStreamSink, _has_waitaof
from roomcast_publisher.domain.ports import RecordSink, SinkUnavailable


def _sink() -> RedisStreamSink:
    settings = load_settings({"ROOMCAST_BUS__KIND": "redis"})
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    return RedisStreamSink(client, settings.bus, timeout=0.5)


def test_the_sink_is_a_record_sink() -> None:
    _: RecordSink = _sink()  # mypy proves the adapter fits the port


@pytest.mark.parametrize(
    ("version", "has"),
    [("7.0.15", False), ("7.2.0", True), ("7.4.1", True), ("8.0.0", True), ("", False)],
)
def test_waitaof_from_redis_7_2_on(version: str, has: bool) -> None:
    assert _has_waitaof(version) is has


async def test_nothing_is_sent_before_the_link_was_checked() -> None:
    sink = _sink()
    message = Message(None, None, "r", 1, "m-1", "2025-01-01T00:00:00.000Z")
    deliveries = await sink.produce([message, message])
    assert len(deliveries) == 2
    assert all(isinstance(d, SinkUnavailable) for d in deliveries)
    assert "not connected yet" in str(deliveries[0])
    assert await sink.readiness() == "not connected yet"
