"""HTTP middlewares that observe requests: a server span each, and request counts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import SpanKind, Status, StatusCode

from roomcast_core.api import Handler
from roomcast_publisher.metrics import PublisherMetrics

_OPERATIONAL = frozenset({"/health", "/livez", "/readyz", "/metrics"})


def route_of(request: web.Request) -> str:
    """The route template, so labels and span names stay few ("unmatched" otherwise)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def server_spans(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A SERVER span per API request, continuing the caller's W3C trace context."""
    if request.path in _OPERATIONAL:
        return await handler(request)
    route = route_of(request)
    tracer = trace.get_tracer("roomcast_publisher")
    with tracer.start_as_current_span(
        f"{request.method} {route}",
        context=extract(request.headers),
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": request.method,
            "http.route": route,
            "url.path": request.path,
            "url.scheme": request.scheme,
        },
    ) as span:
        response = await handler(request)
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        return response


def request_counter(metrics: PublisherMetrics) -> Callable[..., Awaitable[web.StreamResponse]]:
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
            metrics.requests.labels(endpoint=route_of(request), status=str(status)).inc()

    return count
