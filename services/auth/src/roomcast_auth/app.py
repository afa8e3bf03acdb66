"""create_app(settings): the auth service's application, resources in cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from roomcast_auth.adapters.redis_store import GuardedTokenStore, redis_client, redis_unreachable
from roomcast_auth.domain.service import AuthService, Lifetimes
from roomcast_auth.keys import (
    AUTH_METRICS_KEY,
    OPENAPI_KEY,
    REDIS_KEY,
    SERVICE_KEY,
    SETTINGS_KEY,
    SIGNING_KEY,
)
from roomcast_auth.metrics import AuthMetrics
from roomcast_auth.middleware import count_failures
from roomcast_auth.openapi import build_openapi
from roomcast_auth.routes import ROUTES
from roomcast_auth.signing import Signing, signing_from_settings
from roomcast_core.api import cors_middleware, error_middleware
from roomcast_core.health import Health, mount_health
from roomcast_core.settings import Settings
from roomcast_core.telemetry import telemetry_ctx

# A readiness probe must answer well inside the core Health's own 2 s check timeout.
PING_TIMEOUT = 1.5


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Redis client and the service built on it live exactly as long as this entry."""
    settings = app[SETTINGS_KEY]
    client = redis_client(settings.redis)
    store = GuardedTokenStore(
        client,
        settings.redis.url,
        settings.redis.timeout,
        app[AUTH_METRICS_KEY].redis_seconds,
    )
    signing = app[SIGNING_KEY]
    app[REDIS_KEY] = client
    app[SERVICE_KEY] = AuthService(
        signing.issuer,
        signing.verifier,
        store,
        Lifetimes(
            default_ttl=settings.jwt.ttl,
            max_ttl=settings.jwt.max_ttl,
            heartbeat_timeout=settings.edge.heartbeat_timeout,
            leeway=settings.jwt.leeway,
        ),
    )
    yield
    await client.aclose()


def create_app(settings: Settings, signing: Signing | None = None) -> web.Application:
    """signing may be passed in when the caller already checked the keys at start."""
    app = web.Application(
        middlewares=[cors_middleware(settings.auth.cors_origins), error_middleware, count_failures]
    )
    registry = CollectorRegistry()
    app[SETTINGS_KEY] = settings
    app[SIGNING_KEY] = signing or signing_from_settings(settings.jwt)
    app[AUTH_METRICS_KEY] = AuthMetrics.create(registry)
    app[OPENAPI_KEY] = build_openapi(settings)
    app.cleanup_ctx.append(telemetry_ctx("roomcast-auth"))
    app.cleanup_ctx.append(redis_ctx)

    async def redis_ready() -> str | None:
        if REDIS_KEY not in app:
            return "not connected yet"
        return await redis_unreachable(app[REDIS_KEY], min(PING_TIMEOUT, settings.redis.timeout))

    health = Health()
    health.add_check("redis", redis_ready)
    mount_health(app, health, registry)
    app.add_routes(ROUTES)
    return app
