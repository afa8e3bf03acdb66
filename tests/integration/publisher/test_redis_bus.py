"""The publisher on Redis Streams refuses to answer 202 below its durability setting."""

from __future__ import annotations

import asyncio

from tests.conftest import NO_KAFKA, Infra, ServiceFactory
from tests.integration.publisher.helpers import get, post
from tests.streams import read_streams


async def _reasons(url: str) -> object:
    for _ in range(100):
        reply = await get(url + "/readyz")
        if reply.status == 503 and "redis" in str(reply.body.get("reasons", "")):
            return reply.body["reasons"]
        await asyncio.sleep(0.1)
    raise AssertionError("the publisher never said why it is not ready")


async def test_aof_durability_needs_appendonly_and_write_does_not(
    redis_url: str, topic: str, start_service: ServiceFactory
) -> None:
    # The session's plain Redis runs without AOF.
    env = Infra(redis_url, NO_KAFKA, bus="redis").env(topic)
    strict = start_service("publisher", env, name="strict", wait_ready=False)
    reasons = await _reasons(strict.url)
    assert isinstance(reasons, list)
    assert any(r.startswith("redis-streams:") and "appendonly" in r for r in reasons), reasons
    refused = await post(strict.url + "/v1/messages", {"payload": 1, "message_id": "strict-1"})
    assert refused.status == 503, refused.body

    relaxed = start_service("publisher", {**env, "ROOMCAST_BUS__DURABILITY": "write"})
    accepted = await post(relaxed.url + "/v1/messages", {"payload": 2, "message_id": "w-1"})
    assert accepted.status == 202, accepted.body
    landed = await read_streams(redis_url, topic)
    assert [entry.message.message_id for entry in landed] == ["w-1"]
    assert landed[0].position == accepted.body["position"]
