"""Redis adapter of the TokenStore port: bounded in time, traced, failures made explicit.

Every call is cut off after ROOMCAST_REDIS__TIMEOUT; any Redis or socket failure
becomes StoreUnavailable, so handlers answer 503 and the next call simply tries
again (the client reconnects on its own when Redis is back).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from prometheus_client import Histogram
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from roomcast_auth.domain.service import StoreUnavailable
from roomcast_core import redis_link
from roomcast_core.settings import RedisSettings
from roomcast_core.token_store import RedisTokenStore

T = TypeVar("T")

_tracer = trace.get_tracer("roomcast_auth.redis")
_FAILURES = (RedisError, OSError, TimeoutError)


def redis_client(settings: RedisSettings) -> aioredis.Redis:
    """A client that connects lazily, so the service starts (unready) without Redis.

    One immediate retry replaces a pooled connection that died with a Redis restart.
    """
    return redis_link.redis_client(
        settings,
        socket_timeout=settings.timeout,
        socket_connect_timeout=settings.timeout,
        retry=Retry(NoBackoff(), 1),
    )


async def redis_unreachable(client: aioredis.Redis, timeout: float) -> str | None:
    """Readiness check: None when a PING is answered within timeout, else the reason."""
    try:
        async with asyncio.timeout(timeout):
            await client.ping()
    except _FAILURES as exc:
        return f"unreachable: {type(exc).__name__}: {exc}".rstrip(": ")
    return None


class GuardedTokenStore:
    """RedisTokenStore with a time bound, a client span and a latency metric per call."""

    def __init__(self, client: aioredis.Redis, url: str, timeout: float, seconds: Histogram):
        self._store = RedisTokenStore(client)
        self._timeout = timeout
        self._seconds = seconds
        where = urlsplit(url)
        self._attributes: dict[str, str | int] = {"db.system.name": "redis"}
        if where.hostname:
            self._attributes["server.address"] = where.hostname
        if where.port:
            self._attributes["server.port"] = where.port

    async def is_revoked(self, jti: str) -> bool:
        return await self._call("EXISTS", self._store.is_revoked(jti))

    async def record_heartbeat(self, jti: str, timeout_seconds: float) -> None:
        await self._call("SET", self._store.record_heartbeat(jti, timeout_seconds))

    async def revoke(self, jti: str, ttl_seconds: int) -> None:
        await self._call("MULTI", self._store.revoke(jti, ttl_seconds))

    async def _call(self, command: str, operation: Awaitable[T]) -> T:
        attributes = {**self._attributes, "db.operation.name": command}
        started = time.perf_counter()
        with _tracer.start_as_current_span(command, kind=SpanKind.CLIENT, attributes=attributes):
            try:
                async with asyncio.timeout(self._timeout):
                    return await operation
            except _FAILURES as exc:
                raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
            finally:
                self._seconds.labels(operation=command).observe(time.perf_counter() - started)
