"""/health, /livez, /readyz and /metrics: the operational endpoints every service mounts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from roomcast_core.jsonutil import json_response

# A readiness check answers None when its dependency is usable, else the reason.
ReadinessCheck = Callable[[], Awaitable[str | None]]


@dataclass
class Health:
    """Readiness state of one service: named checks plus the draining flag."""

    checks: dict[str, ReadinessCheck] = field(default_factory=dict)
    draining: bool = False
    check_timeout: float = 2.0

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    async def reasons(self) -> list[str]:
        if self.draining:
            return ["draining"]
        names = list(self.checks)
        results = await asyncio.gather(
            *(self._run(name) for name in names), return_exceptions=False
        )
        return [reason for reason in results if reason is not None]

    async def _run(self, name: str) -> str | None:
        try:
            async with asyncio.timeout(self.check_timeout):
                reason = await self.checks[name]()
        except TimeoutError:
            return f"{name}: check timed out"
        except Exception as exc:  # a failing probe must report, not raise
            return f"{name}: {type(exc).__name__}: {exc}"
        return None if reason is None else f"{name}: {reason}"


HEALTH_KEY = web.AppKey("roomcast_health", Health)
METRICS_KEY = web.AppKey("roomcast_metrics_registry", CollectorRegistry)


async def _health(_: web.Request) -> web.Response:
    return json_response({"status": "healthy"})


async def _livez(_: web.Request) -> web.Response:
    return json_response({"status": "alive"})


async def _readyz(request: web.Request) -> web.Response:
    reasons = await request.app[HEALTH_KEY].reasons()
    if reasons:
        return json_response({"status": "not ready", "reasons": reasons}, status=503)
    return json_response({"status": "ready"})


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def mount_health(app: web.Application, health: Health, registry: CollectorRegistry) -> None:
    """Store the health state and metrics registry on the app and add the four routes."""
    app[HEALTH_KEY] = health
    app[METRICS_KEY] = registry
    app.router.add_get("/health", _health)
    app.router.add_get("/livez", _livez)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
