"""The shared token state against a real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from roomcast_core.redis_keys import REVOCATION_CHANNEL
from roomcast_core.token_store import RedisTokenStore
from roomcast_core.tokens import (
    TokenError,
    TokenIssuer,
    TokenVerifier,
    VerificationKey,
    authenticate,
)

SECRET = "token-store-secret-0123456789abcdefgh"


async def test_revocation_is_seen_and_announced(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    store = RedisTokenStore(client)
    issued = TokenIssuer("HS256", SECRET).issue("u", "d", 60)
    verifier = TokenVerifier([VerificationKey("HS256", SECRET)])
    pubsub = client.pubsub()
    await pubsub.subscribe(REVOCATION_CHANNEL)
    try:
        assert (await authenticate(issued.token, verifier, store)).jti == issued.claims.jti
        await store.revoke(issued.claims.jti, 60)
        with pytest.raises(TokenError) as caught:
            await authenticate(issued.token, verifier, store)
        assert caught.value.reason == "revoked"
        assert await store.revoked_among([issued.claims.jti, "other"]) == {issued.claims.jti}
        message = None
        async with asyncio.timeout(5):
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        assert message["data"] == issued.claims.jti.encode()
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def test_heartbeats_lapse_after_their_timeout(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    store = RedisTokenStore(client)
    alive, silent = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        await store.record_heartbeat(alive, 0.5)
        assert await store.alive_among([alive, silent]) == {alive}
        assert 0 < await store.heartbeat_ttl(alive) <= 0.5
        await asyncio.sleep(0.7)
        assert await store.alive_among([alive, silent]) == set()
        assert await store.heartbeat_ttl(alive) == 0
    finally:
        await client.aclose()
