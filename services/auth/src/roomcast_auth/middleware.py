"""The auth service's own middleware, inside the core error_middleware."""

from __future__ import annotations

from aiohttp import web

from roomcast_auth.keys import AUTH_METRICS_KEY
from roomcast_auth.refusals import failure_reason
from roomcast_core.api import ApiError, Handler


@web.middleware
async def count_failures(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every refusal in roomcast_auth_failures_total{reason}."""
    try:
        return await handler(request)
    except ApiError as exc:
        request.app[AUTH_METRICS_KEY].failures.labels(reason=failure_reason(exc)).inc()
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        request.app[AUTH_METRICS_KEY].failures.labels(reason=code).inc()
        raise
