"""The idempotency store against a real Redis: claims, receipts, releases, replays."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from roomcast_core.redis_keys import idempotency_key
from roomcast_publisher.adapters.redis_idempotency import RedisIdempotencyStore
from roomcast_publisher.domain.ports import Claimed, InProgress, Receipt

TIME = "2026-01-02T03:04:05.678Z"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


async def stored(client: aioredis.Redis, message_id: str) -> Any:
    value = await client.get(idempotency_key(message_id))
    return None if value is None else orjson.loads(value)


async def test_claims_settlements_and_replays(
    client: aioredis.Redis,
) -> None:
    store = RedisIdempotencyStore(client)
    mine, theirs = f"m-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
    [other] = await store.claim([theirs], 30)
    assert isinstance(other, Claimed)
    claims = await store.claim([mine, theirs], 30)
    assert isinstance(claims[0], Claimed)
    assert isinstance(claims[1], InProgress)
    await store.settle([Receipt(theirs, "1:7", TIME)], [], 60)
    await store.settle([], [(mine, claims[0].token)], 60)
    again = await store.claim([mine, theirs], 30)
    assert isinstance(again[0], Claimed)
    assert again[1] == Receipt(theirs, "1:7", TIME, replayed=True)
