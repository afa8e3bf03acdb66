"""Typed application state of the auth service."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from roomcast_auth.domain.service import AuthService
from roomcast_auth.metrics import AuthMetrics
from roomcast_auth.signing import Signing
from roomcast_core.settings import Settings

SETTINGS_KEY = web.AppKey("settings", Settings)
SIGNING_KEY = web.AppKey("signing", Signing)
AUTH_METRICS_KEY = web.AppKey("auth_metrics", AuthMetrics)
# Set by the Redis cleanup_ctx entry, so they exist exactly while the client does.
REDIS_KEY = web.AppKey("redis", aioredis.Redis)
SERVICE_KEY = web.AppKey("auth_service", AuthService)
OPENAPI_KEY = web.AppKey("openapi", dict[str, Any])
