"""Redis adapter for token state shared by auth (writes) and ws-edge (reads).

Key layout: see roomcast_core.redis_keys.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from roomcast_core.redis_keys import REVOCATION_CHANNEL, heartbeat_key, revoked_key


class RedisTokenStore:
    """Heartbeats and revocations; satisfies tokens.RevocationChecker."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def is_revoked(self, jti: str) -> bool:
        return bool(await self._redis.exists(revoked_key(jti)))

    async def revoke(self, jti: str, ttl_seconds: int) -> None:
        """Remember the revocation until the token would have expired anyway; tell edges."""
        ttl = max(int(ttl_seconds), 1)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(revoked_key(jti), "1", ex=ttl)
            pipe.delete(heartbeat_key(jti))
            pipe.publish(REVOCATION_CHANNEL, jti)
            await pipe.execute()

    async def revoked_among(self, jtis: Sequence[str]) -> set[str]:
        """Which of these token ids are revoked, in one round trip."""
        if not jtis:
            return set()
        values = await self._redis.mget([revoked_key(j) for j in jtis])
        return {jti for jti, value in zip(jtis, values, strict=True) if value is not None}

    async def record_heartbeat(self, jti: str, timeout_seconds: float) -> None:
        millis = max(int(timeout_seconds * 1000), 1)
        await self._redis.set(heartbeat_key(jti), str(int(time.time() * 1000)), px=millis)

    async def heartbeat_ttl(self, jti: str) -> float:
        """Seconds until the recorded heartbeat lapses (0 when there is none)."""
        millis = await self._redis.pttl(heartbeat_key(jti))
        return max(int(millis), 0) / 1000

    async def alive_among(self, jtis: Sequence[str]) -> set[str]:
        """Which of these token ids have a live HTTP heartbeat, in one round trip."""
        if not jtis:
            return set()
        values = await self._redis.mget([heartbeat_key(j) for j in jtis])
        return {jti for jti, value in zip(jtis, values, strict=True) if value is not None}
