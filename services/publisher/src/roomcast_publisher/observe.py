"""Request counting middleware (server spans come from roomcast_core.telemetry)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from roomcast_core.api import Handler
from roomcast_publisher.metrics import PublisherMetrics


def route_of(request: web.Request) -> str:
    """The route template, so label values stay few ("unmatched" otherwise)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def request_counter(metrics: PublisherMetrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    # The labelled child per (route, status), looked up once: labels() costs more than inc().
    children: dict[tuple[str, int], Any] = {}

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            key = (route_of(request), status)
            child = children.get(key)
            if child is None:
                child = children[key] = metrics.requests.labels(endpoint=key[0], status=str(status))
            child.inc()

    return count
