"""A backlog of failed webhook deliveries: every entry is retried, not only the oldest.

The outbox entries are written by the presence script itself (one run per change,
as a busy deployment's edges would), the edge is a real process and the receiver a
real HTTP server that refuses everything.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from roomcast_core.presence_store import Change, Outlets, PresenceStore
from roomcast_harness.services import ServiceProcess
from tests.conftest import NO_KAFKA, Infra
from tests.integration.presence.conftest import Receiver, eventually, stack_env

# More than the 128 pending entries one look at the outbox used to cover.
ENTRIES = 300


@pytest.fixture(scope="module")
def infra(aof_redis_url: str) -> Infra:
    # Webhooks do not depend on the bus: the Redis Streams one starts in seconds.
    return Infra(aof_redis_url, NO_KAFKA, bus="redis")


@pytest_asyncio.fixture
async def redis_client(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


async def _queue_transitions(client: aioredis.Redis, outbox: str, rooms: list[str]) -> None:
    """One presence script run per room: each queues one outbox entry (one delivery)."""
    store = PresenceStore(client)
    await store.load()
    edge = uuid.uuid4().hex
    async with client.pipeline(transaction=False) as pipe:
        for n, room in enumerate(rooms):
            member = orjson.dumps(
                {"connection_id": f"c{n}", "user_id": f"u{n}", "device_id": "d", "joined_at": 1}
            )
            store.queue_apply(pipe, edge, [Change(room, f"c{n}", f"u{n}", member)], Outlets(outbox))
        await pipe.execute()


async def test_every_entry_of_a_large_backlog_is_retried(
    infra: Infra,
    topic: str,
    tmp_path: Path,
    receiver: Receiver,
    redis_client: aioredis.Redis,
) -> None:
    prefix = f"backlog-{uuid.uuid4().hex[:8]}-"
    rooms = [f"{prefix}{n}" for n in range(ENTRIES)]
    outbox = f"roomcast:test:outbox:{uuid.uuid4().hex[:8]}"

    def refuse(body: dict[str, Any]) -> int:
        return 500 if any(e["room"].startswith(prefix) for e in body["events"]) else 200

    def attempts() -> Counter[str]:
        """Posts per delivery id, for this test's deliveries."""
        with receiver.lock:
            seen = list(receiver.deliveries)
        return Counter(
            d.json["id"]
            for d in seen
            if any(e["room"].startswith(prefix) for e in d.json["events"])
        )

    receiver.answer = refuse
    env = stack_env(infra, topic, outbox, receiver, ROOMCAST_EDGE__PRESENCE="false")
    edge = ServiceProcess("edge", env, tmp_path, name="sender")
    try:
        edge.start()
        await _queue_transitions(redis_client, outbox, rooms)
        # Every entry is posted once, and refused.
        await eventually(lambda: len(attempts()) == ENTRIES, timeout=60)
        first_round_done = time.monotonic()
        # With TIMEOUT 2 s and RETRY_BASE 0.5 s, an entry is due again 2.5 s after its
        # first post; the contract is a first retry within 30 s.
        await eventually(lambda: all(n >= 2 for n in attempts().values()), timeout=30)
        assert time.monotonic() - first_round_done < 30
        assert len(attempts()) == ENTRIES
    finally:
        receiver.answer = lambda _: 200
        edge.stop()
