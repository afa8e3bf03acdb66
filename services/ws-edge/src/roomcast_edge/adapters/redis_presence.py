"""Redis side of the edge: heartbeats and revocations written by auth.

Reads go through roomcast_core's RedisTokenStore (one MGET for many tokens).
Revocations arrive on a pub/sub channel so connections close at once; a periodic
sweep over every open token catches any notice missed while Redis was away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis

from roomcast_core.redis_keys import REVOCATION_CHANNEL
from roomcast_core.token_store import RedisTokenStore

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
SWEEP_CHUNK = 1000


class RedisPresence:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._store = RedisTokenStore(client)

    async def alive_among(self, jtis: Sequence[str]) -> set[str]:
        return await self._store.alive_among(jtis)

    async def revoked_among(self, jtis: Sequence[str]) -> set[str]:
        revoked: set[str] = set()
        for start in range(0, len(jtis), SWEEP_CHUNK):
            revoked |= await self._store.revoked_among(jtis[start : start + SWEEP_CHUNK])
        return revoked

    async def is_revoked(self, jti: str) -> bool:
        return await self._store.is_revoked(jti)

    async def readiness(self) -> str | None:
        await self._client.ping()
        return None

    async def listen_revocations(self, on_revoked: Callable[[str], None]) -> None:
        """Call on_revoked(jti) for every revocation published, until cancelled."""
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(REVOCATION_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None:
                        continue
                    data = message.get("data")
                    jti = data.decode() if isinstance(data, bytes) else str(data)
                    on_revoked(jti)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("revocation channel lost, resubscribing", extra={"error": repr(exc)})
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                except Exception as exc:  # the connection may already be gone
                    log.debug("pubsub close failed", extra={"error": repr(exc)})
